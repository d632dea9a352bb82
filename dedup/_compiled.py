"""The matcher's per-article loops, compiled with numba: shared-text counts, the band index's
hash table, and verification.

Each kernel computes exactly what the numpy code of :mod:`dedup.match` and
:meth:`dedup.detector.Detector._verify` compute (property tests hold the two together, bit for
bit), in one call instead of a dozen numpy calls on small arrays: with a few hundred shingles an
article, numpy's per-call overhead, not the arithmetic, was the cost. (The band index's table
has no numpy twin: until compiled, the index keeps sorted runs, which find the same
candidates.) Importing this module loads numba (about 0.5 s, with the scipy it imports), so a
detector switches to these kernels only once it holds enough articles to repay that
(:meth:`dedup.detector.Detector.compile`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

_F = TypeVar("_F", bound=Callable[..., Any])


def _compiled(function: _F) -> _F:
    # Compiled at the first call for the argument types met (read-only arrays are a type of
    # their own), from numba's cache after the first run.
    return cast(_F, numba.njit(cache=True, nogil=True)(function))


def _inline(function: _F) -> _F:
    return cast(_F, numba.njit(inline="always")(function))


@_compiled
def counter_add(counts: npt.NDArray[np.uint8], shingles: npt.NDArray[np.uint32], mask: np.uint32,
                cap: int) -> None:
    """``counts[slots] = min(counts[slots], cap - 1) + 1`` as numpy does it: all read, then all
    written, so two shingles of one article in one slot raise it once."""
    raised = np.empty(shingles.size, dtype=np.uint8)
    for i in range(shingles.size):
        raised[i] = min(counts[shingles[i] & mask], cap - 1) + 1
    for i in range(shingles.size):
        counts[shingles[i] & mask] = raised[i]


@_compiled
def counter_remove(counts: npt.NDArray[np.uint8], shingles: npt.NDArray[np.uint32], mask: np.uint32,
                   cap: int) -> None:
    """``counts[slots] = where(counts == cap, counts, counts - (counts > 0))``, read then written."""
    lowered = np.empty(shingles.size, dtype=np.uint8)
    for i in range(shingles.size):
        count = counts[shingles[i] & mask]
        lowered[i] = count if count == cap or count == 0 else count - 1
    for i in range(shingles.size):
        counts[shingles[i] & mask] = lowered[i]


@_inline
def _first_at_least(keys: npt.NDArray[Any], value: Any, at: int, strict: bool) -> int:
    """The first position from ``at`` whose key is >= ``value`` (> ``value`` when ``strict``):
    galloping from ``at``, then bisecting, so a run of ascending values walks forward cheaply."""
    n = keys.size
    step = 1
    while at + step < n and (keys[at + step] <= value if strict else keys[at + step] < value):
        step *= 2
    low, high = at, min(at + step + 1, n)
    while low < high:
        mid = (low + high) >> 1
        if keys[mid] <= value if strict else keys[mid] < value:
            low = mid + 1
        else:
            high = mid
    return low


@_inline
def _overlap_one(a: npt.NDArray[np.uint32], a_common: npt.NDArray[np.bool_], specific_a: int,
                 b: npt.NDArray[np.uint32], start: int, end: int, counts: npt.NDArray[np.uint8], mask: np.uint32,
                 limit: int) -> tuple[int, float, float]:
    """(shared, containment, jaccard) of ``a`` and ``b[start:end]``, both sorted (see overlap_many)."""
    inter = both = common_b = 0
    at = 0  # both sets ascend: each b is looked for from where the last one was
    for j in range(start, end):
        value = b[j]
        common = counts[value & mask] > limit
        common_b += common
        at = _first_at_least(a, value, at, False)
        if at < a.size and a[at] == value:
            inter += 1
            if not common and not a_common[at]:
                both += 1
    smaller = min(specific_a, (end - start) - common_b)
    containment = both / max(smaller, 1) if smaller > 0 else 0.0
    union = a.size + (end - start) - inter
    jaccard = inter / max(union, 1) if union > 0 else 0.0
    return both, containment, jaccard


@_inline
def _link_one(a: npt.NDArray[np.uint32], a_specific: npt.NDArray[np.uint8], specific_a: int,
              b: npt.NDArray[np.uint32], start: int, end: int, counts: npt.NDArray[np.uint8], mask: np.uint32,
              limit: int, min_shared: int, missed: npt.NDArray[np.uint32]) -> tuple[int, float, float]:
    """:func:`_overlap_one` for deciding a link (``shared >= min_shared`` and enough
    containment), with ``a_specific`` (1 where ``a``'s shingle is specific) and room in
    ``missed`` for all of ``b``.

    Only ``b``'s shingles that ``a`` lacks have their counts looked up (a lookup in a large
    table, a cache miss each): a shingle of both is as common in ``b`` as in ``a``. When fewer
    than ``min_shared`` specific shingles are shared, the link is refused without the
    containment (0.0 then), and nothing is looked up."""
    inter = both = misses = 0
    n = a.size
    if n <= 8 * (end - start):
        # A merge that does not branch on the values (the branches were mispredicted half the
        # time, and that, not the comparisons, was the cost): each step moves one set or both.
        i, j = 0, start
        while i < n and j < end:
            x, y = a[i], b[j]
            step_a, step_b = int(x <= y), int(y <= x)
            same = step_a & step_b
            inter += same
            both += same & int(a_specific[i])
            missed[misses] = y
            misses += step_b - same
            i += step_a
            j += step_b
        for rest in range(j, end):
            missed[misses] = b[rest]
            misses += 1
    else:  # a much larger set: each of b's shingles is looked for in it
        at = 0
        for j in range(start, end):
            value = b[j]
            at = _first_at_least(a, value, at, False)
            if at < n and a[at] == value:
                inter += 1
                both += a_specific[at]
            else:
                missed[misses] = value
                misses += 1
    union = n + (end - start) - inter
    jaccard = inter / max(union, 1) if union > 0 else 0.0
    if both < min_shared:
        return both, 0.0, jaccard
    common_b = inter - both  # the shingles of both that are common in a, so in b
    for k in range(misses):
        common_b += counts[missed[k] & mask] > limit
    smaller = min(specific_a, (end - start) - common_b)
    containment = both / max(smaller, 1) if smaller > 0 else 0.0
    return both, containment, jaccard


@_inline
def _specific(a: npt.NDArray[np.uint32], counts: npt.NDArray[np.uint8], mask: np.uint32, limit: int
              ) -> tuple[npt.NDArray[np.uint8], int]:
    """1 where a shingle of ``a`` is specific (seen in at most ``limit`` articles), and how many are."""
    specific = np.empty(a.size, dtype=np.uint8)
    for i in range(a.size):
        specific[i] = counts[a[i] & mask] <= limit
    return specific, int(np.count_nonzero(specific))


@_inline
def _room(values: npt.NDArray[np.uint32], needed: int) -> npt.NDArray[np.uint32]:
    """``values``, or a larger array when it holds fewer than ``needed`` (its contents are not kept)."""
    return values if values.size >= needed else np.empty(max(2 * values.size, needed), dtype=np.uint32)


@_compiled
def overlap_many(a: npt.NDArray[np.uint32], a_common: npt.NDArray[np.bool_], b: npt.NDArray[np.uint32],
                 starts: npt.NDArray[np.int64], counts: npt.NDArray[np.uint8], mask: np.uint32,
                 limit: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`dedup.match.overlap_many` of the sorted set ``a`` with the sorted sets
    ``b[starts[i]:starts[i + 1]]``, the others' common shingles read from ``counts``."""
    k = starts.size - 1
    shared = np.zeros(k, dtype=np.int64)
    containment = np.zeros(k)
    jaccard = np.zeros(k)
    if a.size == 0 or b.size == 0:
        return shared, containment, jaccard
    specific_a = int(a.size - np.count_nonzero(a_common))
    for i in range(k):
        shared[i], containment[i], jaccard[i] = _overlap_one(a, a_common, specific_a, b, starts[i], starts[i + 1],
                                                             counts, mask, limit)
    return shared, containment, jaccard


@_compiled
def verify(a: npt.NDArray[np.uint32], candidates: npt.NDArray[np.int64], days: npt.NDArray[np.float64],
           day: float, window: float, sets: npt.NDArray[np.uint32], ends: npt.NDArray[np.int64], base: int,
           counts: npt.NDArray[np.uint8], mask: np.uint32, limit: int, min_shared: int, threshold: float,
           first: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64],
                                npt.NDArray[np.int64]]:
    """The links of an article's shingle set ``a``: the candidates published within ``window`` days
    of ``day`` (any, when unknown) that share at least ``min_shared`` specific shingles and
    ``threshold`` of the smaller one's (numbers, containment, jaccard, in the candidates' order),
    and the candidates within the window whose sets are no longer here (numbered below
    ``first``), for the caller to verify.

    Candidate ``c``'s set is ``sets[ends[c - 1] - base : ends[c] - base]`` (from 0 for the first).
    What :meth:`dedup.detector.Detector._verify` computes with :func:`dedup.match.overlap_many`.
    """
    a_specific, specific_a = _specific(a, counts, mask, limit)
    missed = np.empty(1024, dtype=np.uint32)
    linked = np.empty(candidates.size, dtype=np.int64)
    containments = np.empty(candidates.size)
    jaccards = np.empty(candidates.size)
    kept = 0
    archived = np.empty(candidates.size, dtype=np.int64)
    left = 0
    for c in candidates:
        if not np.isnan(day) and not (np.isnan(days[c]) or abs(days[c] - day) <= window):
            continue
        if c < first:
            archived[left] = c
            left += 1
            continue
        start = (ends[c - 1] if c else 0) - base
        missed = _room(missed, ends[c] - base - start)
        shared, containment, jaccard = _link_one(a, a_specific, specific_a, sets, start, ends[c] - base,
                                                 counts, mask, limit, min_shared, missed)
        if shared >= min_shared and containment >= threshold:
            linked[kept], containments[kept], jaccards[kept] = c, containment, jaccard
            kept += 1
    return linked[:kept], containments[:kept], jaccards[:kept], archived[:left]


@_inline
def _band_slot(key: np.uint64, mask: int) -> np.int64:
    """Where a band key's probe starts in a table of ``mask + 1`` slots (the keys are mixed hashes:
    their low bits, with some of the high ones folded in, are as good as any)."""
    return np.int64((key ^ (key >> np.uint64(29))) & np.uint64(mask))


@_inline
def _band_probe(table_keys: npt.NDArray[np.uint64], heads: npt.NDArray[np.int32], key: np.uint64, s: np.int64,
                mask: int) -> np.int64:
    """The slot of ``key``, or the empty slot where it would go, probing on from slot ``s`` (its
    first slot, or any slot its probe passed: slots are never emptied)."""
    while heads[s] >= 0 and table_keys[s] != key:
        s = (s + 1) & mask
    return s


@_inline
def _band_insert(table_keys: npt.NDArray[np.uint64], heads: npt.NDArray[np.int32], chain: npt.NDArray[np.int32],
                 key: np.uint64, entry: int, s: np.int64, mask: int) -> int:
    """Put ``entry`` at the head of ``key``'s chain (probing on from slot ``s``, see
    :func:`_band_probe`); 1 when the key is new to the table, else 0."""
    s = _band_probe(table_keys, heads, key, s, mask)
    new = 0
    if heads[s] < 0:
        table_keys[s] = key
        new = 1
    chain[entry] = heads[s]
    heads[s] = entry
    return new


@_compiled
def band_table_grown(table_keys: npt.NDArray[np.uint64], heads: npt.NDArray[np.int32], capacity: int
                     ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int32]]:
    """The band table with ``capacity`` slots (a power of two): every key with its chain's head."""
    keys = np.zeros(capacity, dtype=np.uint64)
    grown = np.full(capacity, -1, dtype=np.int32)
    mask = capacity - 1
    for s in range(heads.size):
        if heads[s] >= 0:
            t = _band_slot(table_keys[s], mask)
            while grown[t] >= 0:
                t = (t + 1) & mask
            keys[t], grown[t] = table_keys[s], heads[s]
    return keys, grown


@_compiled
def band_table_insert(table_keys: npt.NDArray[np.uint64], heads: npt.NDArray[np.int32], chain: npt.NDArray[np.int32],
                      keys: npt.NDArray[np.uint64], entries: npt.NDArray[np.int64]) -> int:
    """Insert entry ``entries[i]`` under key ``keys[i]``, in that order (the last inserted is
    the head of its key's chain); return how many keys are new to the table."""
    mask = heads.size - 1
    new = 0
    for i in range(keys.size):
        new += _band_insert(table_keys, heads, chain, keys[i], entries[i], _band_slot(keys[i], mask), mask)
    return new


@_inline
def _band_head(table_keys: npt.NDArray[np.uint64], heads: npt.NDArray[np.int32], key: np.uint64,
               mask: int) -> np.int32:
    """The newest entry under ``key`` (-1 if none)."""
    head: np.int32 = heads[_band_probe(table_keys, heads, key, _band_slot(key, mask), mask)]
    return head


@_inline
def _grown(values: npt.NDArray[np.int64], needed: int) -> npt.NDArray[np.int64]:
    """``values`` in an array at least twice as long and holding at least ``needed``."""
    more = np.empty(max(2 * values.size, needed), dtype=np.int64)
    more[: values.size] = values
    return more


@_compiled
def band_table_add(table_keys: npt.NDArray[np.uint64], heads: npt.NDArray[np.int32], chain: npt.NDArray[np.int32],
                   keys: npt.NDArray[np.uint64], numbers: npt.NDArray[np.int64], bands: int, limit: int,
                   stamps: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """For each article ``numbers[i]`` in turn (bands ``keys[i * bands:(i + 1) * bands]``), find
    the earlier articles of its keys' chains (the ``limit`` most recent entries of each, all when
    ``limit`` is negative), then insert its own entries (``number * bands + band``).

    Returns the distinct earlier articles of each, ascending (one flat array and its bounds),
    and how many keys are new to the table. ``stamps`` (as long as the numbers, zero or stamped
    by earlier calls) notes which articles are found already.

    The table and the chains are far larger than the caches, and a chain's next entry waits for
    the one before: an article's bands are therefore taken a step at a time, all of them at
    each step (first every band's slot, then the first entry of every chain, then the second
    ...), so that the processor fetches the bands' entries side by side. An article's own
    entries go in once its chains are read; with two bands of one key the second then meets
    the same entries as the first, less its own, so the articles found are the same.
    """
    n = numbers.size
    mask = heads.size - 1
    found = np.empty(max(16 * n, 16), dtype=np.int64)
    bounds = np.zeros(n + 1, dtype=np.int64)
    met = np.empty(bands * max(limit, 16), dtype=np.int64)  # one article's entries met
    slots = np.empty(bands, dtype=np.int64)  # each band's slot: its key's, or the empty one it would take
    walk = np.empty(bands, dtype=np.int64)  # each band's next entry (-1 at a chain's end)
    at_slot = np.empty(bands, dtype=np.uint64)
    shift = -1  # entry >> shift is entry // bands when bands is a power of two (a division is slow)
    if bands & (bands - 1) == 0:
        shift = 0
        while (1 << shift) < bands:
            shift += 1
    size = new = 0
    for i in range(n):
        number = numbers[i]
        first = i * bands
        if limit < 0:  # every entry of the chains: room for them all first
            longest = 0
            for b in range(bands):
                entry = _band_head(table_keys, heads, keys[first + b], mask)
                while entry >= 0:
                    longest += 1
                    entry = chain[entry]
            if longest > met.size:
                met = _grown(met, longest)
        # Every band's first slot at once (nothing here waits for anything else) ...
        for b in range(bands):
            s = _band_slot(keys[first + b], mask)
            slots[b], walk[b], at_slot[b] = s, heads[s], table_keys[s]
        # ... then the few that collided with another key probe on ...
        for b in range(bands):
            if walk[b] >= 0 and at_slot[b] != keys[first + b]:
                slots[b] = _band_probe(table_keys, heads, keys[first + b], slots[b], mask)
                walk[b] = heads[slots[b]]
        # ... then the chains, a step of each at a time.
        count = taken = 0
        going = True
        while going and taken != limit:
            going = False
            for b in range(bands):
                entry = walk[b]
                if entry >= 0:
                    met[count] = entry
                    count += 1
                    walk[b] = chain[entry]
                    going = True
            taken += 1
        # The article's own entries, in band order. A key met above is still in its slot; a new
        # key's empty slot may be taken by now, and the probe goes on from it. (Calling
        # _band_insert for every band, the met keys too, made this kernel 40% slower.)
        for b in range(bands):
            key, s, mine = keys[first + b], slots[b], number * bands + b
            if heads[s] >= 0 and table_keys[s] == key:
                chain[mine] = heads[s]
                heads[s] = mine
            else:
                new += _band_insert(table_keys, heads, chain, key, mine, s, mask)
        if size + count > found.size:
            found = _grown(found, size + count)
        start = size
        stamp = number + 1
        for q in range(count):
            earlier = met[q] >> shift if shift >= 0 else met[q] // bands
            if earlier != number and stamps[earlier] != stamp:
                stamps[earlier] = stamp
                found[size] = earlier
                size += 1
        found[start:size].sort()
        bounds[i + 1] = size
    return found[:size], bounds, new


@_compiled
def band_table_query(table_keys: npt.NDArray[np.uint64], heads: npt.NDArray[np.int32], chain: npt.NDArray[np.int32],
                     keys: npt.NDArray[np.uint64], bands: int) -> npt.NDArray[np.int64]:
    """The articles of every entry under any of ``keys`` (ascending, each once)."""
    mask = heads.size - 1
    found = []
    for key in keys:
        entry = _band_head(table_keys, heads, key, mask)
        while entry >= 0:
            found.append(entry // bands)
            entry = chain[entry]
    return np.unique(np.array(found, dtype=np.int64))


@_inline
def _set_of(seq: int, sets: npt.NDArray[np.uint32], ends: npt.NDArray[np.int64], base: int) -> tuple[int, int]:
    """Where article ``seq``'s set is in ``sets`` (start, end)."""
    return (ends[seq - 1] if seq else 0) - base, ends[seq] - base


@_compiled
def count_and_verify(first_seq: int, sets: npt.NDArray[np.uint32], ends: npt.NDArray[np.int64], base: int,
                     days: npt.NDArray[np.float64], embedded: npt.NDArray[np.bool_], windows: npt.NDArray[np.float64],
                     candidates: npt.NDArray[np.int64], candidate_bounds: npt.NDArray[np.int64],
                     archived_seqs: npt.NDArray[np.int64], archived_ends: npt.NDArray[np.int64],
                     archived_sets: npt.NDArray[np.uint32], counts: npt.NDArray[np.uint8], mask: np.uint32, cap: int,
                     limit: int, min_shared: int, threshold: float, template_window: float, counted_from: int,
                     newest_day: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64],
                                                 npt.NDArray[np.float64], npt.NDArray[np.int64], int, float, int]:
    """Count and verify a batch of articles numbered ``first_seq`` on, one after the other, as
    :meth:`dedup.detector.Detector._count` then ``_verify`` do for each: the shared-text counts
    an article is verified with are those after it was counted and before the next was.

    Every article's set, the batch's too, is in ``sets``/``ends``/``base`` (see :func:`verify`),
    from the first one still counted (``counted_from``) on; article ``first_seq + j`` has
    ``candidates[candidate_bounds[j]:candidate_bounds[j + 1]]`` (ascending) and ``windows[j]``.
    Candidates numbered below the first set held in ``sets`` are read from ``archived_*``
    (``archived_seqs`` ascending, set ``i`` ending at ``archived_ends[i]``): those the window
    lets through must all be there.

    Returns the links of every article of the batch, flat in candidate order (numbers,
    containment, jaccard) with each article's bounds, the new ``counted_from`` and
    ``newest_day``, and the number of a candidate that was needed but not given (-1 if none).
    """
    m = windows.size
    total = candidate_bounds[m]
    linked = np.empty(total, dtype=np.int64)
    containments = np.empty(total)
    jaccards = np.empty(total)
    bounds = np.zeros(m + 1, dtype=np.int64)
    kept = 0
    held_from = counted_from  # the first set held in `sets` (earlier ones are archived)
    missed = np.empty(1024, dtype=np.uint32)  # room for a candidate's shingles (see _link_one)
    for j in range(m):
        seq = first_seq + j
        start, end = _set_of(seq, sets, ends, base)
        a = sets[start:end]
        day = days[seq]
        if not embedded[seq]:
            counter_add(counts, a, mask, cap)
        if not np.isnan(day):
            newest_day = max(newest_day, day)
            horizon = newest_day - template_window
            while counted_from < seq:
                old = days[counted_from]
                if not np.isnan(old) and old >= horizon:
                    break
                if not np.isnan(old) and not embedded[counted_from]:
                    s, e = _set_of(counted_from, sets, ends, base)
                    counter_remove(counts, sets[s:e], mask, cap)
                counted_from += 1
        if a.size and candidate_bounds[j + 1] > candidate_bounds[j]:
            a_specific, specific_a = _specific(a, counts, mask, limit)
            for p in range(candidate_bounds[j], candidate_bounds[j + 1]):
                c = candidates[p]
                if not np.isnan(day) and not (np.isnan(days[c]) or abs(days[c] - day) <= windows[j]):
                    continue
                if c >= held_from:
                    s, e = _set_of(c, sets, ends, base)
                    missed = _room(missed, e - s)
                    shared, containment, jaccard = _link_one(a, a_specific, specific_a, sets, s, e, counts, mask,
                                                             limit, min_shared, missed)
                else:
                    at = np.searchsorted(archived_seqs, c)
                    if at == archived_seqs.size or archived_seqs[at] != c:
                        return linked[:kept], containments[:kept], jaccards[:kept], bounds, counted_from, \
                            newest_day, c
                    s = archived_ends[at - 1] if at else 0
                    missed = _room(missed, archived_ends[at] - s)
                    shared, containment, jaccard = _link_one(a, a_specific, specific_a, archived_sets, s,
                                                             archived_ends[at], counts, mask, limit, min_shared,
                                                             missed)
                if shared >= min_shared and containment >= threshold:
                    linked[kept], containments[kept], jaccards[kept] = c, containment, jaccard
                    kept += 1
        bounds[j + 1] = kept
    return linked[:kept], containments[:kept], jaccards[:kept], bounds, counted_from, newest_day, -1
