from __future__ import annotations

import numpy as np
import pytest
import xxhash
from datasketch import MinHash
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dedup import ConfigMismatchError, Detector, DetectorConfig, SketchConfig
from dedup.sketch import Signer, estimate_jaccard
from dedup.text.normalize import normalized_words
from dedup.text.shingles import shingle_hashes, shingle_sets, word_hashes


def identity(value: int) -> int:
    return value


def test_signatures_equal_datasketch_affine32_bit_for_bit(stories: dict[str, str]) -> None:
    shingles = shingle_hashes(stories["summit"])
    reference = MinHash(num_perm=128, seed=1, hashfunc=identity)
    reference.update_batch([int(v) for v in shingles])
    ours = Signer(SketchConfig(scheme="affine32")).sign(shingles)
    assert ours.dtype == np.uint32
    assert np.array_equal(ours, reference.hashvalues)


@pytest.mark.parametrize("scheme", ["oph", "affine32"])
def test_batch_signatures_equal_one_by_one(stories: dict[str, str], scheme: str) -> None:
    signer = Signer(SketchConfig(scheme=scheme))  # type: ignore[arg-type]
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


@pytest.mark.parametrize("scheme", ["oph", "affine32"])
def test_minhash_estimate_tracks_exact_jaccard(stories: dict[str, str], scheme: str) -> None:
    signer = Signer(SketchConfig(scheme=scheme))  # type: ignore[arg-type]
    errors = []
    for text in stories.values():
        words = text.split()
        a = shingle_hashes(" ".join(words))
        for cut in (len(words) // 4, len(words) // 2, 3 * len(words) // 4):
            b = shingle_hashes(" ".join(words[:cut]))
            exact = np.intersect1d(a, b).size / np.union1d(a, b).size
            errors.append(estimate_jaccard(signer.sign(a), signer.sign(b)) - exact)
    # Unbiased on average, and no single estimate far off (128 bins: sd about 0.04).
    assert abs(float(np.mean(errors))) < 0.04
    assert max(abs(e) for e in errors) < 0.15


def test_one_permutation_fills_every_bin_of_a_short_text() -> None:
    signer = Signer(SketchConfig())
    sig = signer.sign(shingle_hashes("أعلنت وزارة الصحة اليوم"))  # two shingles, 128 bins
    assert (sig != 0xFFFFFFFF).all()
    assert set(sig.tolist()) <= set(signer.sign_many([shingle_hashes("أعلنت وزارة الصحة اليوم")])[0].tolist())
    assert len(set(sig.tolist())) == 2


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


_PIECES = [*"أإآاىيئؤةهكکی ًٌٍَُِّْـ٠١٢abcZİßΣ\u00a0\u200f\u0301\n\t-:/،.«»ﻻﷺ", "e\u0301", "ا\u0653", "😀",
           "\u3000", "\u2028", "\x1c", "\u0663", "استراتيجياتهم", "x" * 40]
_ARABIC_HEAVY = st.lists(st.sampled_from(_PIECES), max_size=60).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_ARABIC_HEAVY, st.text(max_size=40)), st.sampled_from([0, 1, 2**63 + 5]))
def test_word_hashes_are_xxh64_of_the_normalized_words(text: str, seed: int) -> None:
    # The compiled kernel normalizes and hashes in one pass (tokens it does not cover go to
    # Python): this holds it to the definition, for every character and word length.
    expected = [xxhash.xxh64_intdigest(w.encode("utf-8"), seed) for w in normalized_words(text)]
    assert word_hashes(text, seed).tolist() == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_ARABIC_HEAVY, st.text(max_size=40)), max_size=6), st.sampled_from([0, 2**63 + 5]))
@example(["كلمة", "اخرى"], 0)  # the texts are joined, but their words are not
@example(["a\u0301", "", "ﻻ b", "c😀"], 0)  # tokens left to Python in several texts, and an empty text
def test_word_hashes_of_several_texts_at_once_are_each_texts_own(texts: list[str], seed: int) -> None:
    # The workers hash a batch's texts in one call of the kernel: each text gets the words it
    # has by the definition, and no token runs from one text into the next.
    from dedup.text.shingles import word_hashes_many

    words, counts = word_hashes_many(texts, seed)
    assert counts.tolist() == [len(normalized_words(t)) for t in texts]
    assert words.tolist() == [xxhash.xxh64_intdigest(w.encode("utf-8"), seed) for t in texts
                              for w in normalized_words(t)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100), st.integers(0, 2**64 - 1))
def test_the_compiled_xxh64_is_xxhash(data: bytes, seed: int) -> None:
    from dedup.text.wordhash import xxh64

    buf = np.frombuffer(data + b"\0", dtype=np.uint8).copy()  # one byte past the end, not hashed
    assert int(xxh64(buf, len(data), np.uint64(seed))) == xxhash.xxh64_intdigest(data, seed)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(1, 2**64 - 1), max_size=7), max_size=6), st.integers(1, 4))
def test_batched_shingles_equal_one_text_at_a_time(lists: list[list[int]], n: int) -> None:
    arrays = [np.array(x, dtype=np.uint64) for x in lists]
    batch = shingle_sets(arrays, n)
    for words, got in zip(arrays, batch, strict=True):
        one = shingle_sets([words], n)[0]
        assert got.tolist() == one.tolist()
        expected_count = 0 if words.size == 0 else max(1, words.size - n + 1)
        assert 0 < got.size <= expected_count or got.size == expected_count == 0


@settings(max_examples=150, deadline=None)
@given(lists=st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=40), max_size=6),
       repeats=st.integers(1, 3), n=st.integers(1, 8), num_perm=st.sampled_from([16, 128, 200]),
       seed=st.integers(0, 2**31))
def test_compiled_shingles_and_signatures_equal_numpy_bit_for_bit(lists: list[list[int]], repeats: int, n: int,
                                                                 num_perm: int, seed: int) -> None:
    """The workers' one compiled pass (word hashes to sorted sets and one permutation signatures,
    densified) gives what the numpy steps give: repeated words make repeated shingles, short
    texts leave bins empty for densification to fill."""
    arrays = [np.tile(np.array(x, dtype=np.uint64), repeats) for x in lists]
    signer = Signer(SketchConfig(num_perm=num_perm, minhash_seed=seed))
    flat, bounds, signatures = signer.shingle_and_sign(arrays, n)
    sets = shingle_sets(arrays, n)
    assert [flat[bounds[i] : bounds[i + 1]].tolist() for i in range(len(arrays))] == [s.tolist() for s in sets]
    assert flat.dtype == np.uint32 and signatures.dtype == np.uint32
    assert np.array_equal(signatures, signer.sign_many(sets))
    affine = Signer(SketchConfig(scheme="affine32", num_perm=num_perm, minhash_seed=seed))
    assert np.array_equal(affine.shingle_and_sign(arrays, n)[2], affine.sign_many(sets))


def test_shingles_of_more_words_than_the_mix_has_are_refused() -> None:
    with pytest.raises(ValueError, match="more than 8 words"):
        Signer(SketchConfig(shingle_words=9)).shingle_and_sign([np.arange(20, dtype=np.uint64)], 9)


@settings(max_examples=200, deadline=None)
@given(values=st.one_of(
    st.lists(st.integers(0, 2**32 - 1), max_size=600),  # hashes: evenly spread
    st.lists(st.integers(0, 40), min_size=100, max_size=600),  # many repeats, all in the first bucket
    st.lists(st.integers(2**32 - 2**12, 2**32 - 1), min_size=100, max_size=600)),  # crowded at the top
    before=st.integers(0, 3), after=st.integers(0, 3))
def test_the_shingle_sort_sorts_its_slice_and_nothing_else(values: list[int], before: int, after: int) -> None:
    """The compiled pass sorts each text's shingles with buckets then insertion (a full sort when
    the values crowd): whatever the values, the slice ends up as ``sorted`` has it."""
    from dedup.text.wordhash import _sort

    guard = [7] * before + values + [5] * after
    array = np.array(guard, dtype=np.uint32)
    _sort(array, before, before + len(values), np.empty(max(len(values), 1), dtype=np.uint32),
          np.empty(2 * len(values) + 2, dtype=np.int64))
    assert array.tolist() == [7] * before + sorted(values) + [5] * after
