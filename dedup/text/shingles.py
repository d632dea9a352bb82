"""Word shingles hashed with xxhash: the sets that signatures summarize and verification compares.

Each normalized word is hashed with xxh64 (by a compiled kernel, :mod:`dedup.text.wordhash`); the
hash of a word n-gram combines the hashes of its words position by position (multiply by odd constants,
add, finish with the MurmurHash3 64-bit mixer) in numpy, and keeps the top 32 bits. This gives
the same shingle hash as hashing the n-gram string would, in the sense that matters (a fixed,
well-mixed function of the n-gram), at a twentieth of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dedup.text.normalize import normalized_words

HashArray = npt.NDArray[np.uint32]

_POSITION_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x27D4EB2F165667C5, 0x94D049BB133111EB],
    dtype=np.uint64,
)


def words(text: str) -> list[str]:
    """The normalized words of ``text``.

    >>> words("الرياض - واس: أعلنت")
    ['الرياض', 'واس', 'اعلنت']
    """
    return normalized_words(text)


def word_hashes(text: str, seed: int = 0) -> npt.NDArray[np.uint64]:
    """xxh64 of each normalized word of ``text``, in order.

    Computed by the compiled kernel of :mod:`dedup.text.wordhash`, imported on first use (a
    process that never hashes a text does not load numba).
    """
    from dedup.text.wordhash import word_hashes as compiled

    return compiled(text, seed)


def word_hashes_many(texts: Sequence[str], seed: int = 0) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """:func:`word_hashes` of several texts, end to end, and how many each has (in one call of
    the compiled kernel)."""
    from dedup.text.wordhash import word_hashes_many as compiled

    return compiled(texts, seed)


def shingle_hashes_of_words(hashes: npt.NDArray[np.uint64], n: int = 3) -> HashArray:
    """Sorted unique 32-bit hashes of the word ``n``-grams, from per-word hashes.

    A text shorter than ``n`` words is one shingle of all its words; an empty text has none.
    """
    return shingle_sets([hashes], n)[0]


def shingle_sets(word_hash_lists: list[npt.NDArray[np.uint64]], n: int = 3) -> list[HashArray]:
    """:func:`shingle_hashes_of_words` of many texts, computed in one vectorized pass."""
    if n > _POSITION_MULTIPLIERS.size:
        raise ValueError(f"shingles of more than {_POSITION_MULTIPLIERS.size} words are not supported")
    counts = np.fromiter((h.size for h in word_hash_lists), dtype=np.int64, count=len(word_hash_lists))
    if counts.sum() == 0:
        return [np.empty(0, dtype=np.uint32) for _ in word_hash_lists]
    words = np.concatenate(word_hash_lists).astype(np.uint64, copy=False)
    ends = np.cumsum(counts)
    widths = np.minimum(counts, n)
    # Each text's grams start at its first word and stop where the last full gram fits.
    grams = np.where(counts > 0, counts - widths + 1, 0)
    doc_of = np.repeat(np.arange(counts.size), grams)
    starts = np.repeat(ends - counts, grams) + (np.arange(doc_of.size) - np.repeat(np.cumsum(grams) - grams, grams))
    width_of = widths[doc_of].astype(np.uint64)
    acc = np.zeros(doc_of.size, dtype=np.uint64)
    for position in range(n):
        inside = width_of > position
        at = np.where(inside, starts + position, 0)
        acc += np.where(inside, words[at] * _POSITION_MULTIPLIERS[position], np.uint64(0))
    acc ^= width_of
    acc ^= acc >> np.uint64(33)
    acc *= np.uint64(0xFF51AFD7ED558CCD)
    acc ^= acc >> np.uint64(33)
    acc *= np.uint64(0xC4CEB9FE1A85EC53)
    acc ^= acc >> np.uint64(33)
    keyed = _sorted_unique((doc_of.astype(np.uint64) << np.uint64(32)) | (acc >> np.uint64(32)))
    bounds = np.searchsorted(keyed >> np.uint64(32), np.arange(counts.size + 1, dtype=np.uint64))
    values = (keyed & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return [values[bounds[i] : bounds[i + 1]] for i in range(counts.size)]


def _sorted_unique(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """np.unique by sorting (numpy 2.3+ hashes first in np.unique, several times slower here)."""
    values = np.sort(values)
    keep = np.ones(values.size, dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    kept: npt.NDArray[np.uint64] = values[keep]
    return kept


def shingle_hashes(text: str, n: int = 3, seed: int = 0) -> HashArray:
    """Sorted unique 32-bit hashes of the word ``n``-grams of normalized ``text``.

    >>> shingle_hashes("أ ب ج د").size
    2
    >>> shingle_hashes("").size
    0
    """
    return shingle_hashes_of_words(word_hashes(text, seed), n)
