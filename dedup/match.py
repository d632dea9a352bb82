"""Candidates from datasketch's MinHashLSH, and their verification by exact shingle overlap.

LSH only proposes: every candidate is verified from the stored shingle sets. Verification uses
*template-aware containment*: shingles that occur in many different articles (page boilerplate,
the fixed wording of weather reports, market closes or congratulation cables) are not evidence
that two texts are one story, so they count neither in the overlap nor in the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from dedup.sketch import Signature
from dedup.text.shingles import HashArray


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchConfig:
    """How candidates are found and verified.

    ``bands`` x ``rows`` must equal the signature's ``num_perm``. 64 bands of 2 rows propose
    pairs down to a Jaccard of about 0.1, so that a copy cut to a third of its source (Jaccard
    0.3, containment 1.0) is still a candidate; verification then decides.

    Two articles are linked when at least ``min_shared`` specific shingles and a share
    ``threshold`` of the shorter one's specific shingles are common to both (template-aware
    containment), and they were published at most ``window_days`` calendar days apart (articles
    with no known time are compared with all). An article appended to a page ("اقرأ أيضاً") is
    often older than the page: it is compared with the articles of ``embedded_window_days``
    around the page (comparing it with all history would cost time in proportion to history),
    and later articles meet it as if it were published with its page.
    A shingle is *specific* until it has been seen in more than ``template_docs`` articles:
    wording that many articles share (boilerplate, the fixed text of weather reports, market
    closes or congratulation cables) is not evidence of a copy.
    Only the articles of the last ``template_window_days`` days count (a state that runs for
    years would otherwise find every phrase common). Each band proposes at most the
    ``bucket_limit`` most recent articles sharing its key.
    """

    bands: int = 64
    rows: int = 2
    threshold: float = 0.46
    min_shared: int = 3
    template_docs: int = 12
    template_window_days: int = 14
    window_days: int = 3
    embedded_window_days: int = 30
    bucket_limit: int = 16
    shared_text_slots_log2: int = 24

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.min_shared < 1:
            raise ValueError(f"min_shared must be >= 1, got {self.min_shared}")
        if not 1 <= self.template_docs < 255:
            raise ValueError(f"template_docs must be between 1 and 254, got {self.template_docs}")
        if self.bucket_limit < 1:
            raise ValueError(f"bucket_limit must be >= 1, got {self.bucket_limit}")
        if self.template_window_days < 1:
            raise ValueError(f"template_window_days must be >= 1, got {self.template_window_days}")
        if self.window_days < 0:
            raise ValueError(f"window_days must be >= 0, got {self.window_days}")
        if self.embedded_window_days < self.window_days:
            raise ValueError(f"embedded_window_days must be >= window_days, got {self.embedded_window_days}")
        if not 16 <= self.shared_text_slots_log2 <= 30:
            raise ValueError("shared_text_slots_log2 must be between 16 and 30")


class CandidateIndex:
    """datasketch's MinHashLSH over article ids, fed with precomputed signatures.

    The reference for :class:`BandIndex`: the same bands give the same candidates (a test holds
    the two side by side). Kept for callers that want datasketch's storage backends.
    """

    def __init__(self, num_perm: int, bands: int, rows: int, seed: int) -> None:
        from datasketch import MinHashLSH  # imported here: it pulls in scipy, 0.4 s at start-up

        check_banding(num_perm, bands, rows)
        self._lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
        self._seed = seed

    def _lean(self, signature: Signature) -> Any:
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self._seed, hashvalues=signature, scheme="affine32")

    def query(self, signature: Signature) -> list[str]:
        return sorted(self._lsh.query(self._lean(signature)))

    def insert(self, key: str, signature: Signature) -> None:
        self._lsh.insert(key, self._lean(signature), check_duplication=False)


def check_banding(num_perm: int, bands: int, rows: int) -> None:
    """Refuse a banding that does not use the whole signature, naming the fix."""
    if bands * rows != num_perm:
        raise ValueError(
            f"bands x rows must equal num_perm: {bands} x {rows} != {num_perm}; "
            "pick bands and rows whose product is the signature length"
        )


_Int64Array = npt.NDArray[np.int64]
_KeyArray = npt.NDArray[np.uint64]
_MAX_RUN = 1 << 23  # band entries (16 bytes each) in one sorted run of the band index (until compiled)


def _fmix64(x: _KeyArray) -> _KeyArray:
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    mixed: _KeyArray = x ^ (x >> np.uint64(33))
    return mixed


def _ranges(starts: _Int64Array, counts: _Int64Array) -> tuple[_Int64Array, _Int64Array]:
    """For each i, the positions ``starts[i] .. starts[i] + counts[i] - 1``, with their i."""
    owner = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    offsets = np.arange(owner.size, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts[owner] + offsets


class _Run:
    """One sorted run of the uncompiled band index: keys ascending, equal keys in arrival order,
    each with its entry."""

    __slots__ = ("entries", "keys")

    def __init__(self, keys: _KeyArray, entries: _Int64Array) -> None:
        self.keys = keys
        self.entries = entries

    def bounds(self, needles: _KeyArray) -> tuple[_Int64Array, _Int64Array]:
        """For each needle, where its equal keys start and end (as ``searchsorted`` left, right)."""
        keys = self.keys
        lo: _Int64Array = np.searchsorted(keys, needles, side="left").astype(np.int64)
        # Most needles are in no run (their band values are new): only the others need an end.
        hi = lo.copy()
        hit = np.flatnonzero(keys[np.minimum(lo, keys.size - 1)] == needles) if keys.size else lo[:0]
        if hit.size:
            hi[hit] = np.searchsorted(keys, needles[hit], side="right")
        return lo, hi


class BandIndex:
    """LSH banding over signatures, as MinHashLSH does it.

    Two articles are candidates when all ``rows`` values of at least one of the ``bands`` bands
    of their signatures are equal (MinHashLSH's rule). Each (band, band values) pair is folded
    into one 64-bit key; folding can make two different bands collide with probability about
    2^-64 per pair, and candidates are verified afterwards, so that only costs a check. Each
    article has an *entry* a band, numbered ``article * bands + band``.

    Until :meth:`compile`, entries live in a few sorted numpy arrays merged as they grow (a
    log-structured layout: a whole batch is looked up with a handful of vectorized searches,
    and nothing needs compiling). Compiled, they live in a hash table of keys, each with a
    chain of its entries, newest first (an array indexed by entry gives the one before it):
    one probe finds a key's whole bucket, where a sorted layout needs one search in each of
    its O(log n) runs, and those searches miss the cache and grow in number with the index
    (at 1M articles they took 41 s of a 197 s scan; with the table the scan took 136-153 s).
    Memory: a 4-byte link an entry, and 12 bytes a table slot, with 1.4 to 3 slots a distinct
    key (news copies share most keys: a quarter of the entries of the 100k benchmark corpus
    were new).

    Articles are numbered by the caller with increasing integers (their arrival order).

    With ``bucket_limit`` a band proposes only the most recent ``bucket_limit`` earlier articles
    sharing its key: a story carried thousands of times (or text that thousands of articles
    repeat) would otherwise make every new copy a candidate of every old one, a quadratic cost.
    A new copy still meets the story through its recent members.

    >>> import numpy as np
    >>> index = BandIndex(bands=2, rows=2)
    >>> sigs = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 5, 5, 5]], dtype=np.uint32)
    >>> [c.tolist() for c in index.add_batch(np.arange(4), sigs)]
    [[], [0], [0], []]
    """

    def __init__(self, bands: int, rows: int, bucket_limit: int | None = None) -> None:
        if bands < 1 or rows < 1:
            raise ValueError(f"bands and rows must be >= 1, got {bands} and {rows}")
        if bucket_limit is not None and bucket_limit < 1:
            raise ValueError(f"bucket_limit must be >= 1 or None, got {bucket_limit}")
        self.bands = bands
        self.rows = rows
        self.bucket_limit = bucket_limit
        self._entries = 0
        self._runs: list[_Run] = []  # until compiled
        self._table: _BandTable | None = None  # once compiled
        salt = np.arange(1, bands + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        self._salt = _fmix64(salt)

    def __len__(self) -> int:
        return self._entries // self.bands

    def compile(self) -> None:
        """Keep the entries in the compiled hash table from now on (see the class), with the same
        results; the entries already held move there."""
        if self._table is not None:
            return
        table = _BandTable(self.bands)
        if self._runs:
            keys = np.concatenate([run.keys for run in self._runs])
            entries = np.concatenate([run.entries for run in self._runs])
            order = np.argsort(entries, kind="stable")  # in arrival order: the newest ends up first in its chain
            table.insert(keys[order], entries[order])
        self._runs = []
        self._table = table

    def keys(self, signatures: npt.NDArray[np.uint32]) -> _KeyArray:
        """One 64-bit key per band: shape (documents, bands)."""
        sigs = np.ascontiguousarray(signatures[:, : self.bands * self.rows], dtype=np.uint32)
        n = sigs.shape[0]
        if self.rows == 2:
            raw = sigs.view(np.uint64).reshape(n, self.bands)
        else:
            parts = sigs.reshape(n, self.bands, self.rows).astype(np.uint64)
            raw = np.zeros((n, self.bands), dtype=np.uint64)
            for r in range(self.rows):
                raw = _fmix64(raw * np.uint64(0x100000001B3) + parts[:, :, r] + np.uint64(r + 1))
        keys: _KeyArray = _fmix64(raw ^ self._salt[None, :])
        return keys

    def query(self, signature: Signature) -> _Int64Array:
        """Numbers of the indexed articles sharing a band with ``signature`` (sorted, unique)."""
        flat = self.keys(signature[None, :]).ravel()
        if self._table is not None:
            return self._table.query(flat)
        order = np.argsort(flat)
        found = [self._lookup(order, flat[order], run)[1] // self.bands for run in self._runs]
        return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)

    def add_batch(self, numbers: npt.ArrayLike, signatures: npt.NDArray[np.uint32]) -> list[_Int64Array]:
        """Add a batch and return, for each of its articles, the candidates that came before it.

        The same as querying then inserting the articles one at a time, in the given order.
        """
        nums = np.asarray(numbers, dtype=np.int64)
        n = nums.size
        if n == 0:
            return []
        flat = self.keys(signatures).ravel()
        if self._table is not None:
            found, bounds = self._table.add(flat, nums, -1 if self.bucket_limit is None else self.bucket_limit)
            self._entries += flat.size
            return [found[bounds[i] : bounds[i + 1]] for i in range(n)]
        self._entries += flat.size
        bands = self.bands
        entries = (nums[:, None] * bands + np.arange(bands, dtype=np.int64)).ravel()
        limit = self.bucket_limit
        queries: list[_Int64Array] = []  # flat (article, band) index of each match
        earlier: list[_Int64Array] = []  # the entry matched
        # Inside the batch first (its articles are the most recent): among equal keys (stable
        # order = arrival order), every earlier one, or the `limit` latest.
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        new_group = np.ones(n * bands, dtype=bool)
        new_group[1:] = ordered[1:] != ordered[:-1]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(ordered.size), 0))
        position = np.arange(ordered.size, dtype=np.int64)
        first = group_start if limit is None else np.maximum(group_start, position - limit)
        owner, before = _ranges(first.astype(np.int64), position - first)
        queries.append(order[owner])
        earlier.append(entries[order[before]])
        # Then the runs, newest first (every article of a run came after those of the runs before
        # it): each (article, band) takes what it still lacks of `limit` from each run, so the
        # ones found are the `limit` most recent without sorting them all.
        need = None if limit is None else limit - (position - first)
        wanted = np.arange(ordered.size, dtype=np.int64)
        for run in reversed(self._runs):
            if need is not None:
                wanted = wanted[need[wanted] > 0]
                if wanted.size == 0:
                    break
            found_at, found = self._lookup(wanted, ordered[wanted], run, None if need is None else need[wanted])
            if need is not None:
                need -= np.bincount(found_at, minlength=need.size)
            queries.append(order[found_at])
            earlier.append(found)
        self._push(ordered, entries[order])
        pairs_later = np.concatenate(queries) // bands
        found = np.concatenate(earlier) // bands
        keep = nums[pairs_later] != found
        # One int64 key a pair (batch position, earlier number): a flat sort, not a row-wise unique.
        span = np.int64(int(max(nums.max(), found.max(initial=0))) + 1)
        keys = np.sort(pairs_later[keep] * span + found[keep])
        if keys.size:
            keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
        later, earliest = keys // span, keys % span
        bounds = np.searchsorted(later, np.arange(n + 1))
        return [earliest[bounds[i] : bounds[i + 1]] for i in range(n)]

    def add(self, numbers: npt.ArrayLike, signatures: npt.NDArray[np.uint32]) -> None:
        """Add without looking anything up (e.g. when replaying stored state)."""
        nums = np.asarray(numbers, dtype=np.int64)
        if nums.size == 0:
            return
        flat = self.keys(signatures).ravel()
        entries = (nums[:, None] * self.bands + np.arange(self.bands, dtype=np.int64)).ravel()
        if self._table is not None:
            self._table.insert(flat, entries)
            self._entries += flat.size
            return
        self._entries += flat.size
        order = np.argsort(flat, kind="stable")
        self._push(flat[order], entries[order])

    @staticmethod
    def _lookup(order: _Int64Array, needles: _KeyArray, run: _Run,
                limit: int | _Int64Array | None = None) -> tuple[_Int64Array, _Int64Array]:
        """The needles' matches in a run: (their place in ``order``, the entry matched)."""
        # ``limit`` may differ per needle.
        lo, hi = run.bounds(needles)
        if limit is not None:  # equal keys are in arrival order: the most recent are last
            lo = np.maximum(lo, hi - limit)
        owner, at = _ranges(lo, hi - lo)
        return order[owner], run.entries[at]

    def _push(self, keys: _KeyArray, entries: _Int64Array) -> None:
        runs = self._runs
        runs.append(_Run(keys, entries))
        # Merge while the newest run is at least half the size of the one before it: O(log n) runs,
        # none larger than _MAX_RUN entries (merging two huge runs would double the memory).
        while (len(runs) >= 2 and runs[-1].keys.size * 2 >= runs[-2].keys.size
               and runs[-1].keys.size + runs[-2].keys.size <= _MAX_RUN):
            newer, older = runs.pop(), runs.pop()
            merged_keys = np.concatenate([older.keys, newer.keys])
            order = np.argsort(merged_keys, kind="stable")
            runs.append(_Run(merged_keys[order], np.concatenate([older.entries, newer.entries])[order]))


class _BandTable:
    """The compiled band index's storage (see :class:`BandIndex`): an open-addressing table of
    keys with the newest entry of each, grown to stay at most 70% full, and the chain array
    (the entry before each entry under its key, -1 for the first)."""

    FIRST_SLOTS = 1 << 16

    def __init__(self, bands: int) -> None:
        from dedup import _compiled

        self._kernels = _compiled
        self._bands = bands
        self._keys = np.zeros(self.FIRST_SLOTS, dtype=np.uint64)
        self._heads = np.full(self.FIRST_SLOTS, -1, dtype=np.int32)
        self._used = 0  # keys in the table
        self._chain = np.empty(1 << 16, dtype=np.int32)
        self._stamps = np.zeros(1 << 12, dtype=np.int64)

    def _make_room(self, keys: int, top_entry: int, top_number: int) -> None:
        if top_entry > np.iinfo(np.int32).max:
            raise OverflowError(f"the band index holds up to {(np.iinfo(np.int32).max + 1) // self._bands:,} "
                                f"articles numbered from 0 ({self._bands} bands each)")
        capacity = self._heads.size
        while (self._used + keys) * 10 > capacity * 7:
            capacity *= 2
        if capacity > self._heads.size:
            self._keys, self._heads = self._kernels.band_table_grown(self._keys, self._heads, capacity)
        if top_entry >= self._chain.size:
            chain = np.empty(max(top_entry + 1, self._chain.size + self._chain.size // 2), dtype=np.int32)
            chain[: self._chain.size] = self._chain
            self._chain = chain
        if top_number >= self._stamps.size:
            stamps = np.zeros(max(top_number + 1, 2 * self._stamps.size), dtype=np.int64)
            stamps[: self._stamps.size] = self._stamps
            self._stamps = stamps

    def insert(self, keys: _KeyArray, entries: _Int64Array) -> None:
        if not entries.size:
            return
        self._make_room(keys.size, int(entries.max()), 0)
        self._used += self._kernels.band_table_insert(self._keys, self._heads, self._chain, keys, entries)

    def add(self, keys: _KeyArray, numbers: _Int64Array, limit: int) -> tuple[_Int64Array, _Int64Array]:
        top = int(numbers.max())
        self._make_room(keys.size, (top + 1) * self._bands - 1, top)
        found, bounds, new = self._kernels.band_table_add(self._keys, self._heads, self._chain, keys, numbers,
                                                          self._bands, limit, self._stamps)
        self._used += new
        return found, bounds

    def query(self, keys: _KeyArray) -> _Int64Array:
        found: _Int64Array = self._kernels.band_table_query(self._keys, self._heads, self._chain, keys, self._bands)
        return found


class SharedTextCounter:
    """How many articles contain each shingle, counted per slot of a fixed hashed table.

    A slot counts the articles holding any shingle that falls in it, so a count can only be
    raised by collisions, which makes verification stricter, never looser. Counts stop at 255
    (one byte a slot keeps the table in cache); only "more than ``limit``" is ever asked.

    After :meth:`compile` the counting and :func:`overlap_many` with this counter run in
    compiled kernels (:mod:`dedup._compiled`), with the same results.
    """

    CAP = 255

    def __init__(self, slots_log2: int) -> None:
        self._mask = np.uint32((1 << slots_log2) - 1)
        self._counts = np.zeros(1 << slots_log2, dtype=np.uint8)
        self._kernels: ModuleType | None = None

    def compile(self) -> None:
        """Use the compiled kernels from now on (importing them loads numba, about 0.5 s)."""
        from dedup import _compiled

        self._kernels = _compiled

    @property
    def compiled(self) -> bool:
        """Whether :meth:`compile` was called."""
        return self._kernels is not None

    @property
    def table(self) -> tuple[npt.NDArray[np.uint8], np.uint32]:
        """The counts and the mask that takes a shingle to its slot (for the compiled kernels)."""
        return self._counts, self._mask

    def add(self, shingles: HashArray) -> None:
        """Count the (distinct) shingles of one more article."""
        if self._kernels is not None:
            self._kernels.counter_add(self._counts, shingles, self._mask, self.CAP)
            return
        # Two shingles of one article in one slot raise it once: the article is counted once.
        slots = shingles & self._mask
        self._counts[slots] = np.minimum(self._counts[slots], self.CAP - 1) + 1

    def remove(self, shingles: HashArray) -> None:
        """Stop counting an article counted before (a saturated slot stays saturated)."""
        if self._kernels is not None:
            self._kernels.counter_remove(self._counts, shingles, self._mask, self.CAP)
            return
        slots = shingles & self._mask
        counts = self._counts[slots]
        self._counts[slots] = np.where(counts == self.CAP, counts, counts - (counts > 0))

    def common(self, shingles: HashArray, limit: int) -> npt.NDArray[np.bool_]:
        """A mask of the shingles seen in more than ``limit`` articles."""
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
    if a.size > b.size:  # look the smaller set up in the larger one
        a, a_common, b, b_common = b, b_common, a, a_common
    at = np.searchsorted(b, a)
    at[at == b.size] = 0
    hit = b[at] == a
    inter_all = int(np.count_nonzero(hit))
    jaccard = inter_all / (a.size + b.size - inter_all)
    specific_a = int(a.size - np.count_nonzero(a_common))
    specific_b = int(b.size - np.count_nonzero(b_common))
    # A shingle counts as shared when it is specific on both sides.
    shared = int(np.count_nonzero(hit & ~a_common & ~b_common[at]))
    if specific_a == 0 or specific_b == 0:
        return Overlap(shared, 0.0, jaccard)
    return Overlap(shared, shared / min(specific_a, specific_b), jaccard)


def overlap_many(
    a: HashArray, a_common: npt.NDArray[np.bool_], others: list[HashArray], counter: SharedTextCounter, limit: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`overlap` of ``a`` with each of ``others`` at once: (shared, containment, jaccard).

    The others' common shingles are read from ``counter`` (seen in more than ``limit`` articles).
    """
    k = len(others)
    sizes = np.fromiter(map(len, others), dtype=np.int64, count=k)
    kernels = counter._kernels
    if kernels is not None:
        starts = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        b = np.concatenate(others) if k else np.empty(0, dtype=np.uint32)
        result: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
        result = kernels.overlap_many(a, a_common, b, starts, *counter.table, limit)
        return result
    if a.size == 0 or k == 0 or not sizes.all() or sizes.sum() >= 1 << _PACK:
        return _overlap_many_general(a, a_common, others, sizes, counter, limit)
    # The usual case, every set non-empty and small: three counts per other summed in one pass,
    # each in _PACK bits of one integer.
    b = np.concatenate(others)
    at = np.searchsorted(a, b)
    np.minimum(at, a.size - 1, out=at)  # past the end: compared with the last, never equal
    hit = a[at] == b
    b_common = counter.common(b, limit)
    packed = hit.astype(np.int64)
    packed += (hit & ~(b_common | a_common[at])).astype(np.int64) << _PACK
    packed += b_common.astype(np.int64) << (2 * _PACK)
    starts = np.zeros(k, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    sums = np.add.reduceat(packed, starts)
    inter_all, shared, common_b = sums & _PACK_MASK, (sums >> _PACK) & _PACK_MASK, sums >> (2 * _PACK)
    return _ratios(a.size, int(np.count_nonzero(a_common)), sizes, inter_all, shared, common_b)


_PACK = 21
_PACK_MASK = (1 << _PACK) - 1


def _overlap_many_general(
    a: HashArray, a_common: npt.NDArray[np.bool_], others: list[HashArray], sizes: npt.NDArray[np.int64],
    counter: SharedTextCounter, limit: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`overlap_many` for any sizes (empty sets, or too many shingles to pack)."""
    k = len(others)
    if a.size == 0 or k == 0 or sizes.sum() == 0:
        return np.zeros(k, dtype=np.int64), np.zeros(k), np.zeros(k)
    b = np.concatenate(others)
    owner = np.repeat(np.arange(k), sizes)
    b_common = counter.common(b, limit)
    at = np.searchsorted(a, b)
    at[at == a.size] = 0
    hit = a[at] == b
    inter_all = np.bincount(owner[hit], minlength=k)
    shared = np.bincount(owner[hit & ~b_common & ~a_common[at]], minlength=k)
    common_b = np.bincount(owner[b_common], minlength=k)
    return _ratios(a.size, int(np.count_nonzero(a_common)), sizes, inter_all, shared, common_b)


def _ratios(
    a_size: int, a_common: int, sizes: npt.NDArray[np.int64], inter_all: npt.NDArray[np.int64],
    shared: npt.NDArray[np.int64], common_b: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    smaller = np.minimum(a_size - a_common, sizes - common_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        containment = np.where(smaller > 0, shared / np.maximum(smaller, 1), 0.0)
        union = a_size + sizes - inter_all
        jaccard = np.where(union > 0, inter_all / np.maximum(union, 1), 0.0)
    return shared, containment, jaccard
