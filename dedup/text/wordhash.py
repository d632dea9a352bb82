"""The compiled text pipeline: the word hashes of a text (normalize, cut into words and hash each
with xxh64 in one pass over the text's code points, without a Python object per word), and
from them the shingle sets and signatures of many texts (:func:`shingles_and_signatures`).

It computes exactly what ``[xxh64(w.encode("utf-8"), seed) for w in normalized_words(text)]``
does (a property test holds the two together): white space cuts tokens; inside a token each
character goes through the one ``str.translate`` table of :mod:`dedup.text.normalize` (removed,
folded, or a word break). A token with any character outside that table (a presentation form,
a character NFKC changes, another script) is normalized by :func:`normalized_words` in Python,
as before; news text has few.

Importing this module compiles the kernels with numba, or loads them from numba's cache (about
0.1 s; the first time ever, about 2 s), which is why :mod:`dedup.text.shingles` imports it only
when it first hashes a text and worker processes import it before they are forked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt
import xxhash

from dedup.text.normalize import _ONE_PASS, normalized_words

_F = TypeVar("_F", bound=Callable[..., Any])


def _inline(function: _F) -> _F:
    return cast(_F, numba.njit(inline="always")(function))


def _compiled(signature: Any) -> Callable[[_F], _F]:
    return cast(Callable[[_F], _F], numba.njit(signature, cache=True, nogil=True))


# xxh64's primes (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md).
_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)


@_inline
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@_inline
def _read(buf: npt.NDArray[np.uint8], at: int, size: int) -> np.uint64:
    """``size`` bytes of ``buf`` from ``at``, little-endian."""
    value = np.uint64(0)
    for i in range(size):
        value |= np.uint64(buf[at + i]) << np.uint64(8 * i)
    return value


@_inline
def _round(acc: np.uint64, lane: np.uint64) -> np.uint64:
    return _rotl(acc + lane * _P2, 31) * _P1


@_compiled("uint64(uint8[::1], int64, uint64)")
def xxh64(buf: npt.NDArray[np.uint8], size: int, seed: np.uint64) -> np.uint64:
    """XXH64 of the first ``size`` bytes of ``buf`` (``xxhash.xxh64_intdigest``'s value)."""
    at = 0
    if size >= 32:
        v1, v2, v3, v4 = seed + _P1 + _P2, seed + _P2, seed, seed - _P1
        while at + 32 <= size:
            v1 = _round(v1, _read(buf, at, 8))
            v2 = _round(v2, _read(buf, at + 8, 8))
            v3 = _round(v3, _read(buf, at + 16, 8))
            v4 = _round(v4, _read(buf, at + 24, 8))
            at += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            h = (h ^ _round(np.uint64(0), v)) * _P1 + _P4
    else:
        h = seed + _P5
    h += np.uint64(size)
    while at + 8 <= size:
        h = _rotl(h ^ _round(np.uint64(0), _read(buf, at, 8)), 27) * _P1 + _P4
        at += 8
    if at + 4 <= size:
        h = _rotl(h ^ (_read(buf, at, 4) * _P1), 23) * _P2 + _P3
        at += 4
    while at < size:
        h = _rotl(h ^ (np.uint64(buf[at]) * _P5), 11) * _P1
        at += 1
    h ^= h >> np.uint64(33)
    h *= _P2
    h ^= h >> np.uint64(29)
    h *= _P3
    h ^= h >> np.uint64(32)
    return h


# What the table says of a code point: >= 0 the character it becomes, else one of these.
_SPACE = -1  # white space: ends the token (str.split)
_BREAK = -2  # another non-word character: ends the word
_REMOVED = -3  # a mark or control: dropped, the word goes on
_ELSEWHERE = -4  # not in the one-pass table: the whole token is normalized in Python


def _table() -> npt.NDArray[np.int32]:
    table = np.full(0x10000, _ELSEWHERE, dtype=np.int32)
    for cp, becomes in _ONE_PASS.items():
        table[cp] = _REMOVED if becomes is None else _BREAK if becomes.isspace() else ord(becomes)
    table[[cp for cp in range(0x10000) if chr(cp).isspace()]] = _SPACE
    return table


_TABLE = _table()


_types: Any = numba.types
# The code points come from np.frombuffer over bytes, read-only: a string signature cannot say so.
_HASH_WORDS = numba.int64(_types.Array(numba.uint32, 1, "C", readonly=True), numba.int64[::1], numba.int32[::1],
                          numba.uint64, numba.uint64[::1], numba.int64[::1], numba.int64[:, ::1])


@_compiled(_HASH_WORDS)
def _hash_words(code_points: npt.NDArray[np.uint32], starts: npt.NDArray[np.int64], table: npt.NDArray[np.int32],
                seed: np.uint64, out: npt.NDArray[np.uint64], counts: npt.NDArray[np.int64],
                elsewhere: npt.NDArray[np.int64]) -> int:
    """Write the word hashes of texts to ``out``, end to end, and how many each has to ``counts``;
    return the number of tokens left to Python: for each, its start and end (code points), where
    its hashes go in ``out`` and its text. Text ``d`` is ``code_points[starts[d]:starts[d + 1] - 1]``
    (each text is followed by one separator, which is not read)."""
    longest = 0
    for d in range(starts.size - 1):
        longest = max(longest, starts[d + 1] - 1 - starts[d])
    word = np.empty(3 * longest + 3, dtype=np.uint8)  # the current word in UTF-8 (the table maps into the BMP)
    count = left = 0
    for d in range(starts.size - 1):
        first, n = count, starts[d + 1] - 1
        length = 0
        i = token_start = starts[d]
        token_out = count
        while i < n:
            cp = code_points[i]
            becomes = table[cp] if cp < table.size else _ELSEWHERE
            if becomes >= 0:
                if becomes < 0x80:
                    word[length] = becomes
                    length += 1
                elif becomes < 0x800:
                    word[length] = 0xC0 | (becomes >> 6)
                    word[length + 1] = 0x80 | (becomes & 0x3F)
                    length += 2
                else:
                    word[length] = 0xE0 | (becomes >> 12)
                    word[length + 1] = 0x80 | ((becomes >> 6) & 0x3F)
                    word[length + 2] = 0x80 | (becomes & 0x3F)
                    length += 3
            elif becomes == _ELSEWHERE:  # the token's words so far are dropped: Python does it all
                end = i
                while end < n and not (code_points[end] < table.size and table[code_points[end]] == _SPACE):
                    end += 1
                elsewhere[left, 0], elsewhere[left, 1], elsewhere[left, 2], elsewhere[left, 3] = (
                    token_start, end, token_out, d)
                left += 1
                count, length, i = token_out, 0, end
                continue
            elif becomes != _REMOVED:  # a break or white space ends the word
                if length:
                    out[count] = xxh64(word, length, seed)
                    count += 1
                    length = 0
                if becomes == _SPACE:
                    token_start, token_out = i + 1, count
            i += 1
        if length:
            out[count] = xxh64(word, length, seed)
            count += 1
        counts[d] = count - first
    return left


def word_hashes(text: str, seed: int = 0) -> npt.NDArray[np.uint64]:
    """xxh64 of each normalized word of ``text``, in order (see the module's docstring)."""
    return word_hashes_many([text], seed)[0]


def word_hashes_many(texts: Sequence[str], seed: int = 0) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """The word hashes of several texts end to end, and how many each has: :func:`word_hashes`
    of each, in one encoding and one call of the kernel (per text, those cost about as much as
    hashing a short text)."""
    # One code point per item (a lone surrogate too: it goes to Python, which refuses it as before).
    # A line feed after each text: it ends a token, so no token is cut (and it is not read).
    joined = texts[0] if len(texts) == 1 else "\n".join(texts)
    code_points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    starts = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1, out=starts[1:])
    most = code_points.size // 2 + len(texts) + 1  # words (and tokens) alternate with what separates them
    out = np.empty(most, dtype=np.uint64)
    counts = np.empty(len(texts), dtype=np.int64)
    elsewhere = np.empty((most, 4), dtype=np.int64)
    left = _hash_words(code_points, starts, _TABLE, np.uint64(seed), out, counts, elsewhere)
    total = int(counts.sum())
    if not left:
        return out[:total], counts
    pieces, done = [], 0
    for start, end, at, d in elsewhere[:left].tolist():
        pieces.append(out[done:at])
        hashes = [xxhash.xxh64_intdigest(w.encode("utf-8"), seed) for w in normalized_words(joined[start:end])]
        pieces.append(np.array(hashes, dtype=np.uint64))
        counts[d] += len(hashes)
        done = at
    pieces.append(out[done:total])
    return np.concatenate(pieces), counts


@_inline
def _fmix32(h: np.uint32) -> np.uint32:
    h ^= h >> np.uint32(16)
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h ^= h >> np.uint32(13)
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    return np.uint32(h ^ (h >> np.uint32(16)))


_SORT_SMALL = 32  # fewer values than this are sorted by insertion alone
_SORT_MOVES = 16  # moves per value the insertion pass may make before a full sort takes over


@_inline
def _sort(values: npt.NDArray[np.uint32], first: int, end: int, scratch: npt.NDArray[np.uint32],
          starts: npt.NDArray[np.int64]) -> None:
    """Sort ``values[first:end]`` in place: what ``values[first:end].sort()`` does, a few times
    faster for the shingle hashes of one text (a few hundred, evenly spread).

    The values go into buckets by their top bits (as many buckets as values, rounded up to a
    power of two), in order of bucket; an insertion pass then only moves each value within its
    bucket. Values that crowd into few buckets make the insertion pass long: past
    :data:`_SORT_MOVES` moves a value, a full sort finishes the job."""
    n = end - first
    if n < _SORT_SMALL:
        for i in range(first + 1, end):
            v = values[i]
            j = i - 1
            while j >= first and values[j] > v:
                values[j + 1] = values[j]
                j -= 1
            values[j + 1] = v
        return
    bits = 1
    while (1 << bits) < n:
        bits += 1
    buckets = 1 << bits
    shift = np.uint32(32 - bits)
    starts[: buckets + 1] = 0
    for i in range(first, end):
        starts[np.int64(values[i] >> shift) + 1] += 1
    for b in range(buckets):
        starts[b + 1] += starts[b]
    for i in range(first, end):
        v = values[i]
        bucket = np.int64(v >> shift)
        scratch[starts[bucket]] = v
        starts[bucket] += 1
    budget = _SORT_MOVES * n
    for i in range(1, n):
        v = scratch[i]
        j = i - 1
        while j >= 0 and scratch[j] > v:
            scratch[j + 1] = scratch[j]
            j -= 1
        budget -= i - 1 - j
        scratch[j + 1] = v
        if budget < 0:
            scratch[:n].sort()
            break
    values[first:end] = scratch[:n]


_SHINGLES_AND_SIGNATURES = _types.Tuple((numba.uint32[::1], numba.int64[::1], numba.uint32[:, ::1]))(
    numba.uint64[::1], numba.int64[::1], numba.int64, numba.uint64[::1], numba.int64, numba.uint32, numba.uint32,
    numba.int64, numba.int64)


@_compiled(_SHINGLES_AND_SIGNATURES)
def shingles_and_signatures(words: npt.NDArray[np.uint64], counts: npt.NDArray[np.int64], n: int,
                            multipliers: npt.NDArray[np.uint64], k: int, a: np.uint32, b: np.uint32, seed: int,
                            max_probes: int) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64],
                                                      npt.NDArray[np.uint32]]:
    """The sorted unique shingle hashes of each document (flat, with bounds) and its one
    permutation signature with optimal densification, from its word hashes (``counts[d]`` of
    ``words`` each, end to end): what :func:`dedup.text.shingles.shingle_sets` then
    :meth:`dedup.sketch.Signer.sign_many` (scheme ``oph``) compute in numpy for a whole batch,
    here document by document (a test holds the two together, bit for bit). ``multipliers``
    has at least ``n`` entries."""
    docs = counts.size
    grams = np.empty(docs, dtype=np.int64)
    total = 0
    for d in range(docs):
        grams[d] = counts[d] - min(counts[d], n) + 1 if counts[d] > 0 else 0
        total += grams[d]
    values = np.empty(total, dtype=np.uint32)
    bounds = np.zeros(docs + 1, dtype=np.int64)
    signatures = np.full((docs, k), np.uint32(0xFFFFFFFF), dtype=np.uint32)
    filled = np.zeros(k, dtype=np.bool_)
    source = np.empty(k, dtype=np.uint32)
    most = 0
    for d in range(docs):
        most = max(most, grams[d])
    scratch = np.empty(most, dtype=np.uint32)
    starts = np.empty(2 * most + 2, dtype=np.int64)
    start = 0  # the document's first word
    out = 0
    for d in range(docs):
        width = min(counts[d], n)
        first = out
        for g in range(grams[d]):
            acc = np.uint64(0)
            for p in range(width):
                acc += words[start + g + p] * multipliers[p]
            acc ^= np.uint64(width)
            acc ^= acc >> np.uint64(33)
            acc *= np.uint64(0xFF51AFD7ED558CCD)
            acc ^= acc >> np.uint64(33)
            acc *= np.uint64(0xC4CEB9FE1A85EC53)
            acc ^= acc >> np.uint64(33)
            values[out] = np.uint32(acc >> np.uint64(32))
            out += 1
        start += counts[d]
        if out > first:  # sorted, each value once
            _sort(values, first, out, scratch, starts)
            kept = first + 1
            for i in range(first + 1, out):
                if values[i] != values[kept - 1]:
                    values[kept] = values[i]
                    kept += 1
            out = kept
        bounds[d + 1] = out
        if out == first:
            continue
        row = signatures[d]
        for i in range(first, out):
            v = _fmix32(np.uint32(np.uint32(values[i] * a) + b))
            slot = (np.uint64(v) * np.uint64(k)) >> np.uint64(32)
            if v < row[slot]:
                row[slot] = v
        empty = 0
        for j in range(k):
            filled[j] = row[j] != np.uint32(0xFFFFFFFF)
            source[j] = row[j]
            empty += not filled[j]
        if empty == 0:
            continue
        first_filled = 0
        while not filled[first_filled]:
            first_filled += 1
        for j in range(k):
            if filled[j]:
                continue
            row[j] = source[first_filled]  # past the probe budget (vanishingly rare)
            for attempt in range(1, max_probes + 1):
                step = np.uint32((attempt * 0x85EBCA77 + seed) & 0xFFFFFFFF)
                probe = _fmix32(np.uint32(np.uint32(np.uint32(j) * np.uint32(0x9E3779B1)) + step))
                src = (np.uint64(probe) * np.uint64(k)) >> np.uint64(32)
                if filled[src]:
                    row[j] = source[src]
                    break
    return values[:out], bounds, signatures
