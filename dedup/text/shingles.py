"""Word shingles hashed with xxhash: the sets that signatures summarize and verification compares."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import xxhash

from dedup.text.normalize import normalized_words

HashArray = npt.NDArray[np.uint32]


def words(text: str) -> list[str]:
    """The normalized words of ``text``.

    >>> words("الرياض - واس: أعلنت")
    ['الرياض', 'واس', 'اعلنت']
    """
    return normalized_words(text)


def shingle_hashes(tokens: list[str], n: int = 3, seed: int = 0) -> HashArray:
    """Sorted unique 32-bit xxhash values of the word ``n``-grams of ``tokens``.

    A text shorter than ``n`` words is one shingle of all its words; an empty text has none.

    >>> shingle_hashes(["a", "b", "c", "d"]).size
    2
    >>> shingle_hashes([]).size
    0
    """
    if not tokens:
        return np.empty(0, dtype=np.uint32)
    if len(tokens) < n:
        grams = [" ".join(tokens)]
    else:
        grams = [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    h = xxhash.xxh32_intdigest
    values = np.fromiter((h(g.encode("utf-8"), seed) for g in grams), dtype=np.uint32, count=len(grams))
    return np.unique(values)
