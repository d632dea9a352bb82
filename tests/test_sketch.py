from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from dedup import ConfigMismatchError, Detector, DetectorConfig, SketchConfig
from dedup.sketch import Signer, estimate_jaccard
from dedup.text.shingles import shingle_hashes


def identity(value: int) -> int:
    return value


def test_signatures_equal_datasketch_affine32_bit_for_bit(stories: dict[str, str]) -> None:
    shingles = shingle_hashes(stories["summit"])
    reference = MinHash(num_perm=128, seed=1, hashfunc=identity)
    reference.update_batch([int(v) for v in shingles])
    ours = Signer(SketchConfig()).sign(shingles)
    assert ours.dtype == np.uint32
    assert np.array_equal(ours, reference.hashvalues)


def test_batch_signatures_equal_one_by_one(stories: dict[str, str]) -> None:
    signer = Signer(SketchConfig())
    sets = [shingle_hashes(t) for t in stories.values()] + [np.empty(0, dtype=np.uint32)]
    batch = signer.sign_many(sets)
    for row, s in zip(batch, sets, strict=True):
        assert np.array_equal(row, signer.sign(s))


def test_empty_text_has_no_shingles_and_a_max_signature() -> None:
    assert shingle_hashes("  \n ").size == 0
    assert (Signer(SketchConfig()).sign(shingle_hashes("")) == 0xFFFFFFFF).all()


def test_shingles_are_sorted_unique_and_orthography_blind() -> None:
    a = shingle_hashes("قالَ الرئيسُ الأمريكيّ إن المحادثات مثمرة")
    b = shingle_hashes("قال الرئيس الامريكي ان المحادثات مثمره")
    assert np.array_equal(a, b)
    assert (np.diff(a.astype(np.int64)) > 0).all()


def test_golden_shingle_values_pin_normalization_and_hashing() -> None:
    # A change to normalization or hashing shows up here as a visible diff: bump the
    # SketchConfig normalization tag when it is intended, since stored states become stale.
    values = shingle_hashes("أعلنت وزارة الصحة اليوم").tolist()
    assert values == sorted(values) and len(values) == 2
    assert values == GOLDEN


GOLDEN = [481256662, 3832543982]


def test_minhash_estimate_tracks_exact_jaccard(stories: dict[str, str]) -> None:
    words = stories["health"].split()
    a = shingle_hashes(" ".join(words))
    b = shingle_hashes(" ".join(words[: len(words) // 2]))
    exact = np.intersect1d(a, b).size / np.union1d(a, b).size
    signer = Signer(SketchConfig())
    assert abs(estimate_jaccard(signer.sign(a), signer.sign(b)) - exact) < 0.15


def test_fingerprint_names_the_configuration() -> None:
    assert SketchConfig().fingerprint.startswith("norm=ar1;shingle=word3;")
    assert SketchConfig(num_perm=64).fingerprint != SketchConfig().fingerprint


def test_state_made_with_another_configuration_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with Detector.open(tmp_path) as d:
        d.add_many([])
    other = DetectorConfig(sketch=SketchConfig(shingle_words=4))
    with pytest.raises(ConfigMismatchError, match="start a new state folder"):
        Detector.open(tmp_path, other)


def test_bad_configuration_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="num_perm"):
        SketchConfig(num_perm=4)
