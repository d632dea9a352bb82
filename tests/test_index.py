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


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 3), min_size=8, max_size=8), min_size=1, max_size=30),
    st.integers(1, 30),
    st.sampled_from([(4, 2), (8, 1), (2, 4), (3, 2)]),  # (3 bands: an entry's article by division, not a shift)
    st.sampled_from([None, 1, 2, 5]),
    st.integers(-1, 30),
    st.booleans(),
)
# Buckets fuller than the limit in runs that merge: the order of equal keys decides what is kept.
@example(np.random.default_rng(0).integers(0, 2, (30, 8)).tolist(), 3, (4, 2), 2, -1, False)
# Compiled after some articles, with buckets fuller than the limit: their entries move in order.
@example(np.random.default_rng(0).integers(0, 2, (30, 8)).tolist(), 4, (4, 2), 2, 13, True)
# Compiled with 3 bands, which finds an entry's article by division, not a shift.
@example(np.random.default_rng(0).integers(0, 2, (30, 8)).tolist(), 4, (3, 2), 2, 0, False)
def test_batches_of_any_size_equal_one_at_a_time(
    rows: list[list[int]], batch: int, banding: tuple[int, int], limit: int | None, compile_at: int,
    replayed: bool,
) -> None:
    # Tiny value ranges force many equal bands, so buckets of every size occur.
    sigs = np.array(rows, dtype=np.uint32)
    bands, per_band = banding
    one_by_one = BandIndex(bands, per_band, limit)
    expected = [one_by_one.add_batch([i], sigs[i : i + 1])[0].tolist() for i in range(len(sigs))]
    # The same in batches, compiled from the start (0), after some articles, or never (-1); the
    # articles before that point are added without lookups (as a state is replayed) or looked up.
    batched = BandIndex(bands, per_band, limit)
    got: list[list[int]] = []
    start = 0
    if replayed and compile_at > 0:
        start = min(compile_at, len(sigs))
        batched.add(np.arange(start), sigs[:start])
        got += expected[:start]
    while start < len(sigs):
        if start >= compile_at >= 0:
            batched.compile()
        end = min(start + batch, len(sigs), compile_at if start < compile_at else len(sigs))
        got += [c.tolist() for c in batched.add_batch(np.arange(start, end), sigs[start:end])]
        start = end
    assert got == expected
    assert len(batched) == len(sigs)
    # Queries find every article of the buckets, without a limit, whether compiled or not.
    for i in range(len(sigs)):
        bucket = {j for j in range(len(sigs)) for b in range(bands)
                  if (sigs[i, b * per_band : (b + 1) * per_band] == sigs[j, b * per_band : (b + 1) * per_band]).all()}
        assert batched.query(sigs[i]).tolist() == sorted(bucket)
    # The rule itself: candidates are the earlier rows that agree on every value of some band
    # (with a limit, only the `limit` most recent such rows of each band).
    for i, found in enumerate(expected):
        truth: set[int] = set()
        for b in range(bands):
            part = slice(b * per_band, (b + 1) * per_band)
            same = [j for j in range(i) if (sigs[i, part] == sigs[j, part]).all()]
            truth.update(same if limit is None else same[-limit:])
        assert found == sorted(truth)


def test_the_compiled_table_grows_and_keeps_every_bucket() -> None:
    # A table that starts tiny grows several times; buckets of many sizes, articles numbered with gaps.
    rng = np.random.default_rng(7)
    sigs = rng.integers(0, 40, (3000, 8)).astype(np.uint32)
    numbers = np.arange(3000) * 3
    plain, compiled = BandIndex(4, 2, 3), BandIndex(4, 2, 3)
    with mock.patch("dedup.match._BandTable.FIRST_SLOTS", 16):
        compiled.compile()
    for start in range(0, 3000, 700):
        part = slice(start, start + 700)
        want = plain.add_batch(numbers[part], sigs[part])
        have = compiled.add_batch(numbers[part], sigs[part])
        assert [c.tolist() for c in have] == [c.tolist() for c in want]
    assert compiled._table is not None and compiled._table._heads.size >= 1 << 13
    assert compiled.query(sigs[5]).tolist() == plain.query(sigs[5]).tolist()


def test_the_compiled_index_refuses_numbers_its_entries_cannot_hold() -> None:
    index = BandIndex(64, 2)
    index.compile()
    sigs = np.zeros((1, 128), dtype=np.uint32)
    with pytest.raises(OverflowError, match="up to 33,554,432 articles"):
        index.add_batch([2**25], sigs)
    # Refused before anything changed: the index goes on as before.
    assert len(index) == 0
    assert [c.tolist() for c in index.add_batch([0, 1], np.zeros((2, 128), dtype=np.uint32))] == [[], [0]]


@pytest.mark.parametrize("compiled", [False, True])
def test_query_does_not_add(stories: dict[str, str], compiled: bool) -> None:
    sigs = _signatures(list(stories.values()))
    index = BandIndex(64, 2)
    if compiled:
        index.compile()
    assert index.query(sigs[0]).tolist() == []  # nothing in it yet
    index.add(np.arange(len(sigs)), sigs)
    assert index.query(sigs[2]).tolist() == [2]
    assert len(index) == len(sigs)
    assert index.add_batch([len(sigs)], sigs[2:3])[0].tolist() == [2]  # the query left no trace


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


_WIDE_SET = st.lists(st.integers(0, 700) | st.integers(0, 2**32 - 1), max_size=400).map(
    lambda values: np.unique(np.array(values, dtype=np.uint32)))


def _part_of(data: st.DataObject, a: np.ndarray) -> np.ndarray:
    """Some of ``a``'s values (any of them, or every n-th: a few) with other values, sorted and distinct."""
    if data.draw(st.booleans()):
        part = a[np.array(data.draw(st.lists(st.booleans(), min_size=a.size, max_size=a.size)), dtype=bool)]
    else:
        part = a[data.draw(st.integers(0, 9)) :: data.draw(st.integers(5, 40))]
    return np.union1d(part, data.draw(_WIDE_SET | _SET)).astype(np.uint32)


@settings(max_examples=120, deadline=None)
@given(_WIDE_SET, st.integers(0, 8), st.integers(1, 4), st.integers(0, 4), st.floats(0.0, 1.0), st.data())
def test_compiled_verification_links_what_numpy_overlaps_link(
        a: np.ndarray, k: int, limit: int, min_shared: int, threshold: float, data: st.DataObject) -> None:
    """The compiled verification (a merge for sets of like sizes, a search of the larger one for
    a small candidate) links exactly the candidates whose overlap, as numpy computes it, passes."""
    from dedup import _compiled
    from dedup.match import SharedTextCounter, overlap_many

    # Candidates and other articles made of parts of a: shared shingles, some of them common.
    others = [_part_of(data, a) if data.draw(st.booleans()) else data.draw(_WIDE_SET | _SET) for _ in range(k)]
    counter = SharedTextCounter(16)
    for s in [*(_part_of(data, a) for _ in range(data.draw(st.integers(0, 5)))), *others, a]:
        counter.add(s)
    shared, containment, jaccard = overlap_many(a, counter.common(a, limit), others, counter, limit)
    want = [(i, containment[i], jaccard[i]) for i in range(len(others))
            if shared[i] >= min_shared and containment[i] >= threshold]
    sets = np.concatenate(others) if others else np.empty(0, dtype=np.uint32)
    ends = np.cumsum([s.size for s in others], dtype=np.int64)
    days = np.full(len(others), np.nan)
    candidates = np.arange(len(others), dtype=np.int64)
    linked, containments, jaccards, archived = _compiled.verify(
        a, candidates, days, np.nan, 3.0, sets, ends, 0, *counter.table, limit, min_shared, threshold, 0)
    assert archived.size == 0
    assert list(zip(linked.tolist(), containments.tolist(), jaccards.tolist(), strict=True)) == want
