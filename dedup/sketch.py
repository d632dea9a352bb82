"""MinHash signatures, vectorized, in datasketch's ``affine32`` scheme, and the configuration
fingerprint stamped on every stored signature.

A signature is the column minimum of ``a_k * fmix32(h) + b_k`` (uint32 wraparound) over the
shingle hashes ``h``: bit for bit what ``datasketch.MinHash(num_perm, seed, scheme="affine32")``
gives after ``update_batch`` with the same 32-bit hash values, computed for a whole batch of
documents at once instead of one ``update`` per shingle.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

from dedup.text.shingles import HashArray

Signature = npt.NDArray[np.uint32]

_MAX = np.uint32(0xFFFFFFFF)
_CHUNK = 1 << 16  # shingles per vectorized block: 128 x 64k uint32 = 32 MiB of scratch


@dataclass(frozen=True, slots=True, kw_only=True)
class SketchConfig:
    """Everything that changes a signature. Its ``fingerprint`` is stored with every signature.

    >>> SketchConfig().describe()
    'norm=ar1;shingle=word3;hash=xxh64mix/0;minhash=affine32/128/1'
    """

    normalization: Literal["ar1"] = "ar1"
    shingle_words: int = 3
    hash_seed: int = 0
    num_perm: int = 128
    minhash_seed: int = 1

    def __post_init__(self) -> None:
        if self.shingle_words < 1:
            raise ValueError(f"shingle_words must be >= 1, got {self.shingle_words}")
        if not 16 <= self.num_perm <= 1024:
            raise ValueError(f"num_perm must be between 16 and 1024, got {self.num_perm}")

    def describe(self) -> str:
        return (
            f"norm={self.normalization};shingle=word{self.shingle_words};hash=xxh64mix/{self.hash_seed};"
            f"minhash=affine32/{self.num_perm}/{self.minhash_seed}"
        )

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:12]
        return f"{self.describe()}#{digest}"


class Signer:
    """Computes signatures for one configuration (the permutations are drawn once)."""

    def __init__(self, config: SketchConfig) -> None:
        self.config = config

    @cached_property
    def _permutations(self) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
        # The same draw as datasketch's affine32 scheme (numpy RandomState seeded with the seed).
        gen = np.random.RandomState(self.config.minhash_seed)
        n = self.config.num_perm
        a = gen.randint(0, 1 << 31, n, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
        b = gen.randint(0, 1 << 32, n, dtype=np.uint32)
        return a[:, None], b[:, None]

    def sign_many(self, shingle_sets: list[HashArray]) -> npt.NDArray[np.uint32]:
        """Signatures of many shingle sets, one row each; an empty set gets all-max values.

        >>> import numpy as np
        >>> Signer(SketchConfig()).sign_many([np.array([1, 2, 3], dtype=np.uint32)]).shape
        (1, 128)
        """
        n_docs = len(shingle_sets)
        out = np.full((n_docs, self.config.num_perm), _MAX, dtype=np.uint32)
        lengths = np.fromiter((s.size for s in shingle_sets), dtype=np.int64, count=n_docs)
        if n_docs == 0 or lengths.sum() == 0:
            return out
        a, b = self._permutations
        doc_of = np.repeat(np.arange(n_docs), lengths)
        values = _fmix32(np.concatenate(shingle_sets).astype(np.uint32, copy=False))
        for start in range(0, values.size, _CHUNK):
            block = values[start : start + _CHUNK]
            docs = doc_of[start : start + _CHUNK]
            permuted = np.multiply(a, block[None, :])  # uint32 wraparound is the modulo 2^32
            permuted += b
            # Segment minima per document inside the block.
            bounds = np.flatnonzero(np.diff(docs)) + 1
            starts = np.concatenate(([0], bounds))
            mins = np.minimum.reduceat(permuted, starts, axis=1)
            rows = docs[starts]
            out[rows] = np.minimum(out[rows], mins.T)
        return out

    def sign(self, shingles: HashArray) -> Signature:
        row: Signature = self.sign_many([shingles])[0]
        return row


def _fmix32(h: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """MurmurHash3's 32-bit finalizer, the pre-mix of datasketch's affine32 scheme."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    mixed: npt.NDArray[np.uint32] = h ^ (h >> np.uint32(16))
    return mixed


def estimate_jaccard(a: Signature, b: Signature) -> float:
    """MinHash estimate of the Jaccard similarity of two signatures."""
    return float(np.count_nonzero(a == b)) / a.size
