"""MinHash signatures computed for a whole batch of documents at once, and the configuration
fingerprint stamped on every stored signature.

Two schemes, both giving uint32 signatures that datasketch's ``MinHashLSH``/``LeanMinHash`` take:

``oph`` (the default)
    One permutation hashing with optimal densification (Li, Owen and Zhang 2012; Shrivastava
    2017). Each shingle hash is permuted once, ``v = fmix32(a * h + b)``, and falls into bin
    ``v * K >> 32`` of K bins; a bin keeps its smallest ``v``. An empty bin borrows the value of
    the first non-empty bin on a probe sequence that depends only on the bin number, so two
    documents borrow alike. The collision probability of a bin is the Jaccard similarity, as in
    K-permutation MinHash, at the cost of one hash per shingle instead of K.

``affine32``
    K-permutation MinHash: the column minimum of ``a_k * fmix32(h) + b_k`` over the shingle
    hashes, bit for bit what ``datasketch.MinHash(num_perm, seed, scheme="affine32")`` gives
    after ``update_batch`` with the same 32-bit values (a test holds them side by side).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

from dedup.text.shingles import _POSITION_MULTIPLIERS, HashArray, shingle_sets

Signature = npt.NDArray[np.uint32]

_MAX = np.uint32(0xFFFFFFFF)
_CHUNK = 1 << 16  # shingles per vectorized block: 128 x 64k uint32 = 32 MiB of scratch
_MAX_PROBES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class SketchConfig:
    """Everything that changes a signature. Its ``fingerprint`` is stored with every signature.

    >>> SketchConfig().describe()
    'norm=ar1;shingle=word3;hash=xxh64mix/0;minhash=oph/128/1'
    """

    normalization: Literal["ar1"] = "ar1"
    shingle_words: int = 3
    hash_seed: int = 0
    scheme: Literal["oph", "affine32"] = "oph"
    num_perm: int = 128
    minhash_seed: int = 1

    def __post_init__(self) -> None:
        if self.shingle_words < 1:
            raise ValueError(f"shingle_words must be >= 1, got {self.shingle_words}")
        if not 16 <= self.num_perm <= 1024:
            raise ValueError(f"num_perm must be between 16 and 1024, got {self.num_perm}")
        if self.scheme not in ("oph", "affine32"):
            raise ValueError(f"scheme must be 'oph' or 'affine32', got {self.scheme!r}")

    def describe(self) -> str:
        return (
            f"norm={self.normalization};shingle=word{self.shingle_words};hash=xxh64mix/{self.hash_seed};"
            f"minhash={self.scheme}/{self.num_perm}/{self.minhash_seed}"
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
        doc_of = np.repeat(np.arange(n_docs), lengths)
        values = np.concatenate(shingle_sets).astype(np.uint32, copy=False)
        if self.config.scheme == "oph":
            self._one_permutation(values, doc_of, out)
        else:
            self._k_permutations(values, doc_of, out)
        return out

    def _one_permutation(self, values: HashArray, doc_of: npt.NDArray[np.int64], out: Signature) -> None:
        k = self.config.num_perm
        a, b = self._permutations
        v = _fmix32(values * a[0, 0] + b[0, 0])
        bins = ((v.astype(np.uint64) * np.uint64(k)) >> np.uint64(32)).astype(np.int64)
        flat = out.reshape(-1)
        np.minimum.at(flat, doc_of * k + bins, v)
        filled = out != _MAX
        has_any = filled.any(axis=1)
        rows, cols = np.nonzero(~filled & has_any[:, None])
        if rows.size == 0:
            return
        source = out.copy()
        for attempt in range(1, _MAX_PROBES + 1):
            step = np.uint32((attempt * 0x85EBCA77 + self.config.minhash_seed) & 0xFFFFFFFF)
            probe = _fmix32(cols.astype(np.uint32) * np.uint32(0x9E3779B1) + step)
            src = ((probe.astype(np.uint64) * np.uint64(k)) >> np.uint64(32)).astype(np.int64)
            ok = filled[rows, src]
            out[rows[ok], cols[ok]] = source[rows[ok], src[ok]]
            rows, cols = rows[~ok], cols[~ok]
            if rows.size == 0:
                return
        # Past the probe budget (vanishingly rare): the first non-empty bin, still deterministic.
        first = np.argmax(filled[rows], axis=1)
        out[rows, cols] = source[rows, first]

    def _k_permutations(self, values: HashArray, doc_of: npt.NDArray[np.int64], out: Signature) -> None:
        a, b = self._permutations
        values = _fmix32(values)
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

    def shingle_and_sign(self, word_hash_lists: list[npt.NDArray[np.uint64]], n: int
                         ) -> tuple[HashArray, npt.NDArray[np.int64], npt.NDArray[np.uint32]]:
        """The shingle sets of many texts, from their word hashes, end to end (text ``i``'s are
        ``sets[bounds[i]:bounds[i + 1]]``), and their signatures: :func:`shingle_sets` then
        :meth:`sign_many`. With the default scheme, in one compiled pass, text by text
        (:func:`dedup.text.wordhash.shingles_and_signatures`).
        """
        counts = np.fromiter((h.size for h in word_hash_lists), dtype=np.int64, count=len(word_hash_lists))
        words = np.concatenate(word_hash_lists) if word_hash_lists else np.empty(0, dtype=np.uint64)
        return self.shingle_and_sign_words(words, counts, n)

    def shingle_and_sign_words(self, words: npt.NDArray[np.uint64], counts: npt.NDArray[np.int64], n: int
                               ) -> tuple[HashArray, npt.NDArray[np.int64], npt.NDArray[np.uint32]]:
        """:meth:`shingle_and_sign` of texts whose word hashes are given end to end (text ``i``
        has ``counts[i]`` of ``words``, as :func:`dedup.text.wordhash.word_hashes_many` gives them)."""
        if n > _POSITION_MULTIPLIERS.size:
            raise ValueError(f"shingles of more than {_POSITION_MULTIPLIERS.size} words are not supported")
        if self.config.scheme == "oph":
            from dedup.text.wordhash import shingles_and_signatures

            a, b = self._permutations
            result: tuple[HashArray, npt.NDArray[np.int64], npt.NDArray[np.uint32]] = shingles_and_signatures(
                words.astype(np.uint64, copy=False), counts.astype(np.int64, copy=False), n, _POSITION_MULTIPLIERS,
                self.config.num_perm, a[0, 0], b[0, 0], self.config.minhash_seed, _MAX_PROBES)
            return result
        shingles = shingle_sets(np.split(words, np.cumsum(counts)[:-1]) if counts.size else [], n)
        bounds = np.zeros(len(shingles) + 1, dtype=np.int64)
        np.cumsum([s.size for s in shingles], out=bounds[1:])
        flat = np.concatenate(shingles) if shingles else np.empty(0, dtype=np.uint32)
        return flat, bounds, self.sign_many(shingles)

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
