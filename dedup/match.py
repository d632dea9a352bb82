"""Candidates from datasketch's MinHashLSH, and their verification by exact shingle overlap.

LSH only proposes: every candidate is verified from the stored shingle sets. Verification uses
*template-aware containment*: shingles that occur in many different stories (page boilerplate,
the fixed wording of weather reports, market closes or congratulation cables) are not evidence
that two texts are one story, so they count neither in the overlap nor in the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from datasketch import LeanMinHash, MinHashLSH

from dedup.sketch import Signature
from dedup.text.shingles import HashArray


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchConfig:
    """How candidates are found and verified.

    ``bands`` x ``rows`` must equal the signature's ``num_perm``. 64 bands of 2 rows propose
    pairs down to a Jaccard of about 0.1, so that a copy cut to a third of its source (Jaccard
    0.3, containment 1.0) is still a candidate; verification then decides.
    """

    bands: int = 64
    rows: int = 2
    threshold: float = 0.5
    min_shared: int = 3
    template_stories: int = 4
    majority: float = 0.49
    max_members_checked: int = 64
    shared_text_slots_log2: int = 24

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.min_shared < 1:
            raise ValueError(f"min_shared must be >= 1, got {self.min_shared}")
        if not 16 <= self.shared_text_slots_log2 <= 30:
            raise ValueError("shared_text_slots_log2 must be between 16 and 30")


class CandidateIndex:
    """A MinHashLSH over article ids, fed with precomputed signatures."""

    def __init__(self, num_perm: int, bands: int, rows: int, seed: int) -> None:
        if bands * rows != num_perm:
            raise ValueError(
                f"bands x rows must equal num_perm: {bands} x {rows} != {num_perm}; "
                "pick bands and rows whose product is the signature length"
            )
        self._lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
        self._seed = seed

    def _lean(self, signature: Signature) -> LeanMinHash:
        return LeanMinHash(seed=self._seed, hashvalues=signature, scheme="affine32")

    def query(self, signature: Signature) -> list[str]:
        return sorted(self._lsh.query(self._lean(signature)))

    def insert(self, key: str, signature: Signature) -> None:
        self._lsh.insert(key, self._lean(signature), check_duplication=False)


class SharedTextCounter:
    """How many distinct stories contain each shingle (hashed into a fixed table).

    Collisions can only raise a count, which makes verification stricter, never looser.
    """

    def __init__(self, slots_log2: int) -> None:
        self._mask = np.uint32((1 << slots_log2) - 1)
        self._counts = np.zeros(1 << slots_log2, dtype=np.uint32)

    def add_story_shingles(self, shingles: HashArray) -> None:
        """Count ``shingles`` (new to one story) once more."""
        if shingles.size:
            np.add.at(self._counts, shingles & self._mask, 1)

    def common(self, shingles: HashArray, limit: int) -> npt.NDArray[np.bool_]:
        """A mask of the shingles already seen in more than ``limit`` stories."""
        mask: npt.NDArray[np.bool_] = self._counts[shingles & self._mask] > limit
        return mask


@dataclass(frozen=True, slots=True)
class Overlap:
    shared: int
    containment: float
    jaccard: float


def overlap(a: HashArray, a_common: npt.NDArray[np.bool_], b: HashArray, b_common: npt.NDArray[np.bool_]) -> Overlap:
    """Overlap of two sorted shingle sets, ignoring shingles marked common on either side.

    ``containment`` is |A ∩ B| / min(|A|, |B|) over the specific (not common) shingles, so a cut
    copy is fully contained in its source; ``jaccard`` is plain over all shingles.

    >>> import numpy as np
    >>> a = np.array([1, 2, 3, 4], dtype=np.uint32); b = np.array([1, 2, 3, 4, 5, 6, 7, 8], dtype=np.uint32)
    >>> o = overlap(a, np.zeros(4, bool), b, np.zeros(8, bool)); (o.shared, o.containment, o.jaccard)
    (4, 1.0, 0.5)
    """
    if a.size == 0 or b.size == 0:
        return Overlap(0, 0.0, 0.0)
    both, ia, _ = np.intersect1d(a, b, assume_unique=True, return_indices=True)
    inter_all = int(both.size)
    jaccard = inter_all / (a.size + b.size - inter_all)
    specific_a = int(a.size - np.count_nonzero(a_common))
    specific_b = int(b.size - np.count_nonzero(b_common))
    shared = int(inter_all - np.count_nonzero(a_common[ia]))
    if specific_a == 0 or specific_b == 0:
        return Overlap(shared, 0.0, jaccard)
    return Overlap(shared, shared / min(specific_a, specific_b), jaccard)

