"""The band index proposes exactly the candidates datasketch's MinHashLSH proposes."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dedup.match import BandIndex, CandidateIndex
from dedup.sketch import Signer, SketchConfig
from dedup.text.shingles import shingle_hashes
from tests.edits import first_half, new_headline


def _signatures(texts: list[str]) -> np.ndarray:
    return Signer(SketchConfig()).sign_many([shingle_hashes(t) for t in texts])


def test_same_candidates_as_minhashlsh_one_batch(stories: dict[str, str]) -> None:
    texts = [t for body in stories.values() for t in (body, first_half(body), new_headline(body))]
    sigs = _signatures(texts)
    reference = CandidateIndex(128, 64, 2, seed=1)
    expected = []
    for i, sig in enumerate(sigs):
        expected.append(sorted(int(k) for k in reference.query(sig)))
        reference.insert(str(i), sig)
    ours = BandIndex(64, 2).add_batch(np.arange(len(texts)), sigs)
    assert [c.tolist() for c in ours] == expected
    assert any(expected), "the fixture must contain copies, or this test proves nothing"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 3), min_size=8, max_size=8), min_size=1, max_size=30),
    st.integers(1, 30),
    st.sampled_from([(4, 2), (8, 1), (2, 4)]),
    st.sampled_from([None, 1, 2, 5]),
    st.booleans(),
    st.booleans(),
)
# Buckets fuller than the limit in runs that merge: the order of equal keys decides what is kept.
@example(np.random.default_rng(0).integers(0, 2, (30, 8)).tolist(), 3, (4, 2), 2, False, True)
def test_batches_of_any_size_equal_one_at_a_time(
    rows: list[list[int]], batch: int, banding: tuple[int, int], limit: int | None, directories: bool,
    compiled: bool
) -> None:
    if directories:  # every run searched through its directory, as long runs are
        with mock.patch("dedup.match._DIRECTORY_MIN", 1):
            _check_batches(rows, batch, banding, limit, compiled)
    else:
        _check_batches(rows, batch, banding, limit, compiled)


def _check_batches(rows: list[list[int]], batch: int, banding: tuple[int, int], limit: int | None,
                   compiled: bool = False) -> None:
    # Tiny value ranges force many equal bands, so buckets of every size occur.
    sigs = np.array(rows, dtype=np.uint32)
    bands, per_band = banding
    one_by_one = BandIndex(bands, per_band, limit)
    expected = [one_by_one.add_batch([i], sigs[i : i + 1])[0].tolist() for i in range(len(sigs))]
    batched = BandIndex(bands, per_band, limit)
    if compiled:  # the compiled lookups find what numpy finds
        batched.compile()
    got: list[list[int]] = []
    for start in range(0, len(sigs), batch):
        got += [c.tolist() for c in batched.add_batch(np.arange(start, min(start + batch, len(sigs))),
                                                        sigs[start : start + batch])]
    assert got == expected
    # The rule itself: candidates are the earlier rows that agree on every value of some band
    # (with a limit, only the `limit` most recent such rows of each band).
    for i, found in enumerate(expected):
        truth: set[int] = set()
        for b in range(bands):
            part = slice(b * per_band, (b + 1) * per_band)
            same = [j for j in range(i) if (sigs[i, part] == sigs[j, part]).all()]
            truth.update(same if limit is None else same[-limit:])
        assert found == sorted(truth)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=300), st.integers(0, 6), st.data())
def test_a_run_directory_finds_the_bounds_searchsorted_finds(values: list[int], repeat: int,
                                                              data: st.DataObject) -> None:
    from dedup.match import _Run

    # Many equal keys (one value repeated) and keys at both ends of the range.
    keys = np.sort(np.array([*values, *[values[0]] * repeat * 40, 0, 2**64 - 1], dtype=np.uint64))
    needles = np.array(sorted(data.draw(st.lists(st.sampled_from([*values, 0, 1, 2**63, 2**64 - 1])
                                                 | st.integers(0, 2**64 - 1), max_size=50))), dtype=np.uint64)
    with mock.patch("dedup.match._DIRECTORY_MIN", 1):
        lo, hi = _Run(keys, np.zeros(keys.size, dtype=np.int32)).bounds(needles)
    assert lo.tolist() == np.searchsorted(keys, needles, side="left").tolist()
    assert hi.tolist() == np.searchsorted(keys, needles, side="right").tolist()


def test_query_does_not_add(stories: dict[str, str]) -> None:
    sigs = _signatures(list(stories.values()))
    index = BandIndex(64, 2)
    index.add(np.arange(len(sigs)), sigs)
    assert index.query(sigs[2]).tolist() == [2]
    assert len(index) == len(sigs)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=40), st.lists(st.lists(st.integers(0, 60), max_size=40), max_size=6),
       st.integers(1, 3), st.booleans())
def test_overlap_with_many_equals_overlap_with_each(a_values: list[int], others_values: list[list[int]],
                                                     limit: int, packed: bool) -> None:
    from dedup.match import SharedTextCounter, overlap, overlap_many

    def hashes(values: list[int]) -> np.ndarray:
        return np.unique(np.array(values, dtype=np.uint32))

    a, others = hashes(a_values), [hashes(v) for v in others_values]
    counter = SharedTextCounter(16)
    for s in [a, *others, *others]:  # shingles in several of them become common
        counter.add(s)
    with mock.patch("dedup.match._PACK", 21 if packed else 0):  # 0: the unpacked route
        shared, containment, jaccard = overlap_many(a, counter.common(a, limit), others, counter, limit)
    for i, b in enumerate(others):
        o = overlap(a, counter.common(a, limit), b, counter.common(b, limit))
        assert (shared[i], containment[i], jaccard[i]) == pytest.approx((o.shared, o.containment, o.jaccard))


_SET = st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 40), max_size=60).map(
    lambda values: np.unique(np.array(values, dtype=np.uint32)))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _SET, st.integers(1, 300)), max_size=12), _SET, st.lists(_SET, max_size=6),
       st.integers(0, 12), st.data())
def test_compiled_kernels_count_and_verify_bit_for_bit_as_numpy(
        steps: list[tuple[bool, np.ndarray, int]], a: np.ndarray, others: list[np.ndarray], limit: int,
        data: st.DataObject) -> None:
    from dedup.match import SharedTextCounter, overlap_many

    plain, compiled = SharedTextCounter(16), SharedTextCounter(16)
    compiled.compile()
    # Adding one set many times saturates its slots; small values share slots with large ones.
    for add, shingles, times in steps:
        for _ in range(times):
            for counter in (plain, compiled):
                (counter.add if add else counter.remove)(shingles)
    assert np.array_equal(plain._counts, compiled._counts)
    # The caller's own mask of a's common shingles (usually the counter's, but it need not be).
    a_common = plain.common(a, limit) | np.array(data.draw(st.lists(st.booleans(), min_size=a.size, max_size=a.size)),
                                                 dtype=bool)
    expected = overlap_many(a, a_common, others, plain, limit)
    got = overlap_many(a, a_common, others, compiled, limit)
    for want, have in zip(expected, got, strict=True):
        assert want.dtype == have.dtype and want.tolist() == have.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=400), st.lists(st.integers(0, 399), max_size=400),
       st.sampled_from([1, 2**16, 2**32, 2**48]))
def test_the_compiled_stable_argsort_orders_as_numpy(values: list[int], copies: list[int], step: int) -> None:
    from dedup import _compiled

    # Equal keys (in arrival order), and keys that differ only in one 16-bit digit.
    keys = [*values, *(values[i % len(values)] for i in copies if values), *(i * step for i in range(20))]
    array = np.array(keys, dtype=np.uint64)
    assert _compiled.stable_argsort(array).tolist() == np.argsort(array, kind="stable").tolist()
