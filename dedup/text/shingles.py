"""Word shingles hashed with xxhash: the sets that signatures summarize and verification compares.

Each normalized word is hashed once with xxh64 (memoized: news vocabulary repeats); the hash of
a word n-gram combines the hashes of its words position by position (multiply by odd constants,
add, finish with the MurmurHash3 64-bit mixer) in numpy, and keeps the top 32 bits. This gives
the same shingle hash as hashing the n-gram string would, in the sense that matters (a fixed,
well-mixed function of the n-gram), at a twentieth of the cost.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import xxhash

from dedup.text.normalize import fold_word, normalized_words, raw_words

HashArray = npt.NDArray[np.uint32]

_POSITION_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x27D4EB2F165667C5, 0x94D049BB133111EB],
    dtype=np.uint64,
)
_MEMO_LIMIT = 500_000
_word_hashes: dict[int, dict[str, int]] = {}


def words(text: str) -> list[str]:
    """The normalized words of ``text``.

    >>> words("الرياض - واس: أعلنت")
    ['الرياض', 'واس', 'اعلنت']
    """
    return normalized_words(text)


def word_hashes(text: str, seed: int = 0) -> npt.NDArray[np.uint64]:
    """xxh64 of each normalized word of ``text``, in order.

    The hash of a raw word (before folding) is memoized per seed: news vocabulary repeats, so
    most words cost one dictionary lookup done in C by ``map``.
    """
    memo = _word_hashes.get(seed)
    if memo is None:
        memo = _word_hashes[seed] = {}
    raw = raw_words(text)
    found: list[int | None] = list(map(memo.get, raw))
    if None in found:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        for i, h in enumerate(found):
            if h is None:
                word = raw[i]
                h = memo.get(word)
                if h is None:
                    h = memo[word] = xxhash.xxh64_intdigest(fold_word(word).encode("utf-8"), seed)
                found[i] = h
    return np.array(found, dtype=np.uint64)


def shingle_hashes_of_words(hashes: npt.NDArray[np.uint64], n: int = 3) -> HashArray:
    """Sorted unique 32-bit hashes of the word ``n``-grams, from per-word hashes.

    A text shorter than ``n`` words is one shingle of all its words; an empty text has none.
    """
    if n > _POSITION_MULTIPLIERS.size:
        raise ValueError(f"shingles of more than {_POSITION_MULTIPLIERS.size} words are not supported")
    count = hashes.size
    if count == 0:
        return np.empty(0, dtype=np.uint32)
    width = min(n, count)
    grams = count - width + 1
    acc = np.zeros(grams, dtype=np.uint64)
    for position in range(width):
        acc += hashes[position : position + grams] * _POSITION_MULTIPLIERS[position]
    acc ^= np.uint64(width)
    acc ^= acc >> np.uint64(33)
    acc *= np.uint64(0xFF51AFD7ED558CCD)
    acc ^= acc >> np.uint64(33)
    acc *= np.uint64(0xC4CEB9FE1A85EC53)
    acc ^= acc >> np.uint64(33)
    return np.unique((acc >> np.uint64(32)).astype(np.uint32))


def shingle_hashes(text: str, n: int = 3, seed: int = 0) -> HashArray:
    """Sorted unique 32-bit hashes of the word ``n``-grams of normalized ``text``.

    >>> shingle_hashes("أ ب ج د").size
    2
    >>> shingle_hashes("").size
    0
    """
    return shingle_hashes_of_words(word_hashes(text, seed), n)
