"""The engine: Article in, Decision out, stories kept with their canonical copy and provenance.

The daemon, the CLI and ingestion code all go through :class:`Detector`, so they give the same
clusters for the same articles in the same order.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import dataclasses
import datetime
import functools
import gc
import heapq
import itertools
import marshal
import math
import multiprocessing
import operator
import os
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from dedup._errors import DedupError, DuplicateIdError
from dedup._model import EMBEDDED_MARK, Article, Decision, ProvenanceEntry, Story, positional
from dedup._runs import Place, articles_at, content_digest
from dedup.match import BandIndex, MatchConfig, SharedTextCounter, check_banding, overlap, overlap_many
from dedup.sketch import Signature, Signer, SketchConfig
from dedup.store import SQLiteStore, StoredArticle
from dedup.stories import CanonicalFacts, StoryGraph, canonical_policy
from dedup.text.clean import clean
from dedup.text.credits import AGENCY_KEYS, Credit, agency_of_outlet, credits_in_lines, detect_credits
from dedup.text.shingles import HashArray, shingle_hashes, word_hashes_many


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """The whole configuration: how texts become signatures, and how matches are decided."""

    sketch: SketchConfig = field(default_factory=SketchConfig)
    match: MatchConfig = field(default_factory=MatchConfig)


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """A story near a queried text (from :meth:`Detector.query`)."""

    story_id: str
    canonical_id: str
    best_match_id: str
    containment: float
    similarity: float


class _Link(NamedTuple):  # (a tuple: built for every verified candidate, several times faster than a dataclass)
    seq: int
    containment: float
    similarity: float


def _closeness(link: _Link) -> tuple[float, float, int]:
    """Closest first: the most contained, then the most similar, then the earliest."""
    return (-link.containment, -link.similarity, link.seq)


@dataclass(frozen=True, slots=True)
class Sketch:
    """What the pure, parallelizable steps compute for one article."""

    shingles: HashArray
    signature: Signature
    digest: str
    credits: tuple[Credit, ...]
    embedded: tuple[tuple[str, Sketch], ...] = ()  # whole articles appended to the page: text, sketch
    agency_outlet: bool = False  # the outlet or url is a wire agency's own (agency registry)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An article with its sketch (``embedded_in``: the page it was split off from)."""

    article: Article
    sketch: Sketch
    embedded_in: str | None = None

    @property
    def shingles(self) -> HashArray:
        return self.sketch.shingles

    @property
    def signature(self) -> Signature:
        return self.sketch.signature


def sketch_many(articles: list[Article], config: SketchConfig) -> list[Sketch]:
    """Clean, shingle and sign a batch, hash its content and read its credits.

    Pure (a function of the articles and the configuration), so it can run in worker processes.
    """
    return _sketch_fields([_fields(a) for a in articles], config).unpack()


# What the pure steps read from an article: text, title, url, outlet, published, byline. Plain
# tuples of strings go to worker processes several times faster than Article objects.
_Fields = tuple[str, str, str, str, str, str]


def _fields(a: Article) -> _Fields:
    return (a.text, a.title, a.url, a.outlet, a.published, a.byline)


@dataclass(frozen=True, slots=True)
class _PackedSketches:
    """The sketches of a chunk in a few arrays: what crosses back from a worker.

    Entries past the chunk's articles are appended articles split off their pages: ``parents``
    says whose, ``segments`` holds their texts.
    """

    shingles: HashArray
    bounds: npt.NDArray[np.int64]
    signatures: npt.NDArray[np.uint32]
    digests: list[str]
    credits: list[tuple[Credit, ...]]
    parents: list[int]
    segments: list[str]
    agency: list[bool]

    def unpack(self) -> list[Sketch]:
        b = self.bounds.tolist()
        sketches = [
            _new_sketch(self.shingles[b[i] : b[i + 1]], self.signatures[i], self.digests[i], self.credits[i], (),
                        i < len(self.agency) and self.agency[i])
            for i in range(len(self.digests))
        ]
        count = len(sketches) - len(self.parents)
        embedded: dict[int, list[tuple[str, Sketch]]] = {}
        for j, parent in enumerate(self.parents):
            embedded.setdefault(parent, []).append((self.segments[j], sketches[count + j]))
        return [
            dataclasses.replace(sketches[i], embedded=tuple(embedded[i])) if i in embedded else sketches[i]
            for i in range(count)
        ]


def _sketch_fields(rows: list[_Fields], config: SketchConfig, digests: list[str] | None = None) -> _PackedSketches:
    """Sketch these articles (see :func:`sketch_many`); ``digests`` are their content digests
    when known already."""
    cleaned = [clean(r[0], r[1]) for r in rows]
    parents = [i for i, c in enumerate(cleaned) for _ in c.embedded]
    segments = [text for c in cleaned for text in c.embedded]
    words, counts = word_hashes_many([*(c.main for c in cleaned), *segments], config.hash_seed)
    flat, bounds, signatures = _signer(config).shingle_and_sign_words(words, counts, config.shingle_words)
    digests = list(digests) if digests is not None else [_content_hash(*r[:5]) for r in rows]
    digests += [_content_hash(text, "", rows[i][2], rows[i][3], rows[i][4]) for i, text in zip(parents, segments,
                                                                                                 strict=True)]
    credits = [credits_in_lines(c.source_lines, r[5]) for c, r in zip(cleaned, rows, strict=True)]
    credits += [detect_credits(text) for text in segments]
    agency = [agency_of_outlet(r[3], r[2]) is not None for r in rows]
    return _PackedSketches(flat, bounds, signatures, digests, credits, parents, segments, agency)


class SketchAhead:
    """Sketches computed by a worker pool before the articles are added, in whatever order they
    are met (e.g. while a dump is still being read and sorted).

    The steps it runs are pure, so a sketch computed ahead is the one :meth:`Detector.add_all`
    would compute: handing one to it (``ahead=``) changes when the work is done, never a
    result. At most ``limit`` articles are sketched ahead (what is held until they are added);
    the others are sketched as they are added, as usual.

    Without ``digests``, the workers leave out the content digests of the articles they read
    from the places (5 us of their 72 us an article): for a detector that holds no articles
    yet (:meth:`Detector.add_all` refuses any other) fed a dump's articles, whose ids are
    unique (:class:`dedup.dump.Dump`), a digest is compared only when an id is met again, which
    only an appended article's id can be (``PAGE#embedded-1``), and those digests are computed.
    The others' records then have an empty ``content_hash``: a detector whose state is kept
    (a store) needs them, and takes the default.
    """

    def __init__(self, pool: Executor, config: SketchConfig, limit: int = 20_000, *, digests: bool = True) -> None:
        self.pool = pool  # the workers, which add_all(ahead=...) then uses for the rest
        self.config = config
        self.digests = digests
        self._room = limit
        # article id -> (a fingerprint of its fields, the chunk's future, place in the chunk): not
        # the fields themselves, which would keep every text alive until it is added.
        self._where: dict[str, tuple[int, Future[_PackedSketches], int]] = {}
        self._unpacked: dict[Future[_PackedSketches], list[Sketch]] = {}
        self._places: dict[str, tuple[Article, Place]] = {}  # see place()
        self._left: dict[Future[_PackedSketches], int] = {}
        # Handing a chunk to a pool that is still starting waits until its first worker is
        # forked: a thread of its own does that, so the caller goes on reading meanwhile.
        self._handing = ThreadPoolExecutor(1, thread_name_prefix="dedup-sketch-ahead")

    def submit(self, articles: list[Article]) -> None:
        """Start sketching these articles (as many as there is room for); returns at once."""
        articles = [a for a in articles[: max(self._room, 0)] if a.id not in self._where]
        if not articles:
            return
        fields = [_fields(a) for a in articles]
        future: Future[_PackedSketches] = Future()
        self._handing.submit(self._hand_over, fields, future)
        self._room -= len(articles)
        self._left[future] = len(articles)
        for place, (a, f) in enumerate(zip(articles, fields, strict=True)):
            self._where[a.id] = (hash(f), future, place)

    def place(self, article: Article, place: Place) -> None:
        """Say where a worker can read ``article`` (a run file of a dump, see
        :class:`dedup.dump.Dump`'s ``on_place``): when this very article object is added next and
        was not sketched ahead, the worker that sketches it reads it there instead of being sent
        its text."""
        self._places[article.id] = (article, place)

    def _hand_over(self, fields: list[_Fields], future: Future[_PackedSketches]) -> None:
        """Submit a chunk to the pool; ``future`` then follows the pool's (its result or error)."""
        try:
            done = self.pool.submit(_sketch_fields, fields, self.config)
        except BaseException as exc:  # the pool was shut down or broke meanwhile
            future.set_exception(exc)
            return
        done.add_done_callback(functools.partial(_relay, future))

    def close(self) -> None:
        """Let the thread that hands chunks over go (what was handed over still runs)."""
        self._handing.shutdown(wait=False)

    def _take(self, chunk: list[Article], config: SketchConfig) -> Callable[[], list[Sketch]]:
        """What gives the sketches of ``chunk``: those computed ahead, and the rest submitted now."""
        found: list[tuple[int, Future[_PackedSketches], int]] = []
        rest: list[int] = []
        same_config = config == self.config
        placed: list[int] = []
        places: list[Place] = []
        for i, a in enumerate(chunk):
            where = self._places.pop(a.id, None)
            entry = self._where.pop(a.id, None) if same_config else None
            if entry is not None and entry[0] == hash(_fields(a)):
                found.append((i, entry[1], entry[2]))
            elif where is not None and where[0] is a:
                placed.append(i)
                places.append(where[1])
            else:
                rest.append(i)
        later = self.pool.submit(_sketch_fields, [_fields(chunk[i]) for i in rest], config) if rest else None
        read_there = self.pool.submit(_sketch_places, places, config, self.digests) if places else None

        def sketches() -> list[Sketch]:
            out: list[Sketch | None] = [None] * len(chunk)
            for i, future, place in found:
                unpacked = self._unpacked.get(future)
                if unpacked is None:
                    unpacked = self._unpacked[future] = future.result().unpack()
                out[i] = unpacked[place]
                self._left[future] -= 1
                if not self._left[future]:  # every article of it taken: let it go
                    del self._left[future]
                    self._unpacked.pop(future, None)
            if later is not None:
                for i, sketch in zip(rest, later.result().unpack(), strict=True):
                    out[i] = sketch
            if read_there is not None:
                for i, sketch in zip(placed, read_there.result().unpack(), strict=True):
                    out[i] = sketch
            return [k for k in out if k is not None]

        return sketches


def _sketch_places(places: list[Place], config: SketchConfig, digests: bool = True) -> _PackedSketches:
    """In a worker: sketch the articles read at these places of run files (their digests: see
    :class:`SketchAhead`)."""
    found = articles_at(places, digests)
    return _sketch_fields([_fields(a) for a, _ in found], config, [digest for _, digest in found])


def _relay(to: Future[_PackedSketches], done: Future[_PackedSketches]) -> None:
    if done.cancelled():
        to.cancel()
    elif (error := done.exception()) is not None:
        to.set_exception(error)
    else:
        to.set_result(done.result())


def _unpack(future: Future[_PackedSketches]) -> list[Sketch]:
    return future.result().unpack()


def prepare_many(articles: list[Article], config: SketchConfig) -> list[Prepared]:
    """Articles with their sketches, computed here."""
    return [Prepared(a, k) for a, k in zip(articles, sketch_many(articles, config), strict=True)]


_signers: dict[SketchConfig, Signer] = {}


class WorkerPool(ProcessPoolExecutor):
    """A :class:`ProcessPoolExecutor` that says whether its workers are up (:attr:`started`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = threading.Event()  # the warm-up tasks have run: the workers are up


def worker_pool(workers: int) -> WorkerPool:
    """Worker processes for :meth:`Detector.add_many`, already importing the engine.

    Not forked from this process: forking a process that runs threads (polars, the daemon) can
    deadlock. Where the platform has it, a fork server imports the engine once and forks the
    workers from itself (one import for all of them); elsewhere they are spawned. The pool
    says when they are up (``started``): until then the caller may as well do work itself.
    """
    context: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload(["dedup.detector", "dedup.text.wordhash"])
        context = server
    else:
        context = multiprocessing.get_context("spawn")
    pool = WorkerPool(workers, mp_context=context, initializer=_worker_setup)

    def start() -> None:
        try:
            warming = [pool.submit(_warm) for _ in range(workers)]
        except (RuntimeError, OSError):  # shut down meanwhile, or broken: the next submit says so
            pool.started.set()
            return
        wait(warming)
        pool.started.set()

    # Starting the workers waits for the fork server to import the engine: that is done beside
    # the caller (which can read its input meanwhile), not in its way.
    threading.Thread(target=start, name="dedup-workers-start", daemon=True).start()
    return pool


def _worker_setup() -> None:
    """A worker is one of several processes sharing the cores: polars (which reads the dump
    blocks it is given) runs on one thread there, not on a pool of its own as large as the machine.

    A worker makes and drops objects by the million and keeps few: Python's cycle collector
    runs rarely there (each worker spent about 0.3 s of 12 s in it on a 100k-article scan).

    A worker runs at a lower priority (:data:`WORKER_NICENESS`) than the process it works for.
    """
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    gc.set_threshold(*RARE_COLLECTIONS)
    keep_freed_memory()
    with contextlib.suppress(OSError):  # (a system that refuses it: the workers run as they are)
        os.nice(WORKER_NICENESS)


#: How much lower a worker's scheduling priority is than its parent's (``nice``). The process
#: that adds the articles must add them one batch after another, and its work is what a scan
#: waits for; the workers sketch ahead of it. With equal priority the system shared the cores
#: between the three evenly, and the adding process got less than a core while the workers
#: sketched batches it was not ready for: a 100k-article scan took 12.6-12.8 s at equal
#: priority, 12.0-12.6 s with this (4 interleaved runs each). When the adding process waits for
#: a sketch, it leaves the core to the workers, whatever their priority. Since its kernels got
#: faster the workers are the slower side while adding, and the priority no longer shows (4
#: interleaved pairs at 100k: medians 14.23 s at 10, 14.26 s at 0); it is kept for machines and
#: dumps where the adding process is the slower side again.
WORKER_NICENESS = 10

#: Thresholds of Python's cycle collector (:func:`gc.set_threshold`) in the worker processes,
#: which may serve a long-running program (``dedup scan`` turns the collector off while it
#: runs, see :func:`dedup.cli._no_cycle_collection`).
RARE_COLLECTIONS = (50_000, 50, 100)


def keep_freed_memory() -> None:
    """Have C's allocator keep the memory a process frees for its next allocations (where it
    is glibc's), for a process that makes and drops large buffers one batch after another.

    By default glibc gives back to the system a buffer of 128 KB or more as soon as it is freed
    (and the top of its heap past 128 KB): the next block of a dump read into memory, and the
    next batch's arrays, then touch new pages, which the system must zero and map one page fault
    at a time (each 32 MB block of a dump a worker read cost 8,192 of them). Here buffers of
    less than 32 MB come from the heap, and up to 256 MB of freed heap is kept: reading the
    15 blocks of a 100k-article dump took 1.57 s of CPU instead of 1.80 s (medians of 6
    interleaved runs). The process keeps near its peak memory instead of shrinking between
    batches. Elsewhere (another C library, another system) nothing changes.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no mallopt, or no C library to look in
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def _warm() -> None:
    _signer(SketchConfig())


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _signer(config: SketchConfig) -> Signer:
    signer = _signers.get(config)
    if signer is None:
        signer = _signers[config] = Signer(config)
    return signer


def content_hash(article: Article) -> str:
    """A digest of what identifies an article's content (an id seen again with another is refused)."""
    return _content_hash(article.text, article.title, article.url, article.outlet, article.published)


def _content_hash(text: str, title: str, url: str, outlet: str, published: str) -> str:
    return content_digest(text.encode("utf-8", "surrogatepass"), title, url, outlet, published)


class _Archive:
    """What memory does not keep of older articles: shingle sets and display fields.

    Shingle sets of articles that left the template window are archived in arrival order (only
    articles published out of order, undated or appended to a page still meet them); the display
    fields (title, url, byline, credit text, first seen) of every article are archived when the
    detector keeps no texts. Both are read back one article at a time, when asked: from the store
    when there is one, else from a temporary file whose places are arrays indexed by number.
    """

    def __init__(self, store: SQLiteStore | None) -> None:
        self._store = store
        self._file: IO[bytes] | None = None
        self._end = 0
        self._flushed = 0  # bytes written to the file (pread sees only those)
        self._pending = bytearray()  # the rest, written a megabyte at a time (not a write a piece)
        self._starts = array.array("q")  # shingle sets: where, how many
        self._sizes = array.array("l")
        self._detail_starts = array.array("q")  # display fields: where, how many bytes
        self._detail_sizes = array.array("l")

    def __len__(self) -> int:
        """How many articles' shingle sets are archived (all those numbered below)."""
        return len(self._sizes)

    def _append(self, data: bytes) -> int:
        self._pending += data
        start, self._end = self._end, self._end + len(data)
        if len(self._pending) >= 1 << 20:
            self._flush()
        return start

    def _append_array(self, values: HashArray) -> int:
        """Write an array's bytes straight from its memory (after what is pending): a copy of
        megabytes is fresh memory, which costs more to touch than to write."""
        self._flush()
        start = self._end
        with values.data as view, view.cast("B") as data:
            self._write(data)
            self._end += len(data)
        self._flushed = self._end
        return start

    def _flush(self) -> None:
        if self._pending:
            with memoryview(self._pending) as pending:
                self._write(pending)
        self._pending.clear()
        self._flushed = self._end

    def _write(self, data: memoryview) -> None:
        if self._file is None:
            # Open as long as the detector; close() closes it (and the system deletes it).
            self._file = tempfile.TemporaryFile(prefix="dedup-archive-", buffering=0)  # noqa: SIM115
        written = 0
        while written < len(data):  # an unbuffered write may take only part
            written += self._file.write(data[written:]) or 0

    def _read(self, start: int, size: int) -> bytes:
        if size == 0:
            return b""
        if start + size > self._flushed:  # still waiting to be written
            self._flush()
        assert self._file is not None
        return os.pread(self._file.fileno(), size, start)

    def put(self, seq: int, shingles: HashArray) -> None:
        if seq != len(self._sizes):
            raise AssertionError(f"article {seq} archived out of order (expected {len(self._sizes)})")
        self._sizes.append(int(shingles.size))
        in_file = self._store is None and shingles.size
        self._starts.append(self._append(shingles.astype("<u4").tobytes()) if in_file else 0)

    def put_range(self, first: int, sets: HashArray, ends: npt.NDArray[np.int64]) -> None:
        """:meth:`put` the sets of the articles numbered ``first`` on, end to end in ``sets``
        (article ``first + i``'s ends at ``ends[i]``, counted from the start of ``sets``): one
        write for them all."""
        if first != len(self._sizes):
            raise AssertionError(f"article {first} archived out of order (expected {len(self._sizes)})")
        sizes = np.diff(ends, prepend=0)
        self._sizes.extend(sizes.tolist())
        if self._store is not None:
            self._starts.extend(itertools.repeat(0, sizes.size))
            return
        start = self._append_array(np.ascontiguousarray(sets, dtype="<u4"))
        # An empty set has no place (as put gives it): 0.
        self._starts.extend(np.where(sizes > 0, start + 4 * (ends - sizes), 0).tolist())  # in bytes

    def get(self, seq: int) -> HashArray:
        if self._store is not None:
            return self._store.shingles(seq)
        data = self._read(self._starts[seq], self._sizes[seq] * 4)
        return np.frombuffer(data, dtype="<u4").astype(np.uint32)

    def put_details(self, seq: int, details: tuple[str | None, ...]) -> None:
        if seq != len(self._detail_sizes):
            raise AssertionError(f"article {seq} archived out of order (expected {len(self._detail_sizes)})")
        # marshal: this process wrote the file and reads it back (several times faster than json).
        data = b"" if self._store is not None else marshal.dumps(details)
        self._detail_sizes.append(len(data))
        self._detail_starts.append(self._append(data) if data else 0)

    def has_details(self, seq: int) -> bool:
        return seq < len(self._detail_sizes)

    def get_details(self, seq: int) -> tuple[str | None, ...]:
        if self._store is not None:
            return self._store.details(seq, _DETAILS)
        details: tuple[str | None, ...] = marshal.loads(self._read(self._detail_starts[seq], self._detail_sizes[seq]))
        return details

    def close(self) -> None:
        self._pending.clear()
        if self._file is not None:
            self._file.close()
            self._file = None


_DETAILS = ("title", "url", "byline", "credit_text", "fetched_at")  # read back when asked


def _interruption_behind(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt or SystemExit among the causes of ``exc``, if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt | SystemExit):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class _LiveShingles:
    """The shingle sets of the articles still in the template window, end to end in one array.

    Articles are appended in number order and leave in number order (:meth:`release`), so the
    sets live in one growing array: a compiled kernel reads any of them by number without a
    Python object per set (``sets``, ``ends`` and ``base``: article ``seq``'s set is
    ``sets[ends[seq - 1] - base : ends[seq] - base]``). The array is copied into another one,
    with at least half as much room again as the live sets need, when it fills or when
    released articles hold more than half as much of it as the live ones (as the template
    window slides, a set is then copied about twice, not four times).

    The array a move leaves is kept for a later move that it has room for (the largest such
    one): fresh memory costs a page fault every 4 KiB when it is first written, which took
    more time than the copying. So a set read (:meth:`get`, ``sets``) is valid until the
    next move, not longer: a caller that keeps one copies it.
    """

    _MIN = 1 << 16

    def __init__(self) -> None:
        self.sets = np.empty(self._MIN, dtype=np.uint32)
        self.base = 0  # position of sets[0] among all shingles appended
        self._ends = np.empty(1024, dtype=np.int64)
        self._count = 0  # articles appended
        self.first = 0  # the first article not released
        self._spare: npt.NDArray[np.uint32] | None = None  # the largest array a move left

    @property
    def ends(self) -> npt.NDArray[np.int64]:
        """Where each article's set ends, among all shingles appended."""
        return self._ends[: self._count]

    def _start(self, seq: int) -> int:
        return int(self._ends[seq - 1]) if seq else 0

    def append(self, shingles: HashArray) -> None:
        used = self._start(self._count) - self.base
        if used + shingles.size > self.sets.size:
            self._move(self._start(self._count) - self._start(self.first) + shingles.size)
            used = self._start(self._count) - self.base
        self.sets[used : used + shingles.size] = shingles
        if self._count == self._ends.size:
            self._ends = np.concatenate([self._ends, np.empty_like(self._ends)])
        self._ends[self._count] = self.base + used + shingles.size
        self._count += 1

    def extend(self, sets: list[HashArray]) -> None:
        """:meth:`append` each of ``sets``, in one copy."""
        sizes = np.fromiter((s.size for s in sets), dtype=np.int64, count=len(sets))
        total = int(sizes.sum())
        used = self._start(self._count) - self.base
        if used + total > self.sets.size:
            self._move(self._start(self._count) - self._start(self.first) + total)
            used = self._start(self._count) - self.base
        if sets:
            np.concatenate(sets, out=self.sets[used : used + total])
        if self._count + len(sets) > self._ends.size:
            grown = np.empty(max(2 * self._ends.size, self._count + len(sets)), dtype=np.int64)
            grown[: self._count] = self._ends[: self._count]
            self._ends = grown
        self._ends[self._count : self._count + len(sets)] = self.base + used + np.cumsum(sizes)
        self._count += len(sets)

    def get(self, seq: int) -> HashArray:
        if seq < self.first:
            raise AssertionError(f"article {seq}'s shingles were released")
        return self.sets[self._start(seq) - self.base : int(self._ends[seq]) - self.base]

    def release(self, seq: int) -> None:
        """Forget the sets of the articles numbered below ``seq``."""
        self.first = seq
        dead = self._start(seq) - self.base
        live = self._start(self._count) - self._start(seq)
        if dead > max(live // 2, self._MIN):
            self._move(live)

    def _move(self, needed: int) -> None:
        """Into the spare array if it has room for ``needed`` shingles and a quarter as many
        more, else into a new one with room for half as many more (fresh memory costs more than
        an early move: a spare just short of the half took 0.1 s more at 100k articles)."""
        start, end = self._start(self.first), self._start(self._count)
        room = needed + max(needed // 2, self._MIN)
        spare, left = self._spare, self.sets
        if spare is not None and spare.size >= needed + max(needed // 4, self._MIN):
            sets, self._spare = spare, None
        else:
            sets = np.empty(room, dtype=np.uint32)
        sets[: end - start] = left[start - self.base : end - self.base]
        self.sets, self.base = sets, start
        if self._spare is None or left.size > self._spare.size:
            self._spare = left


class Detector:
    """Finds the copies of one story among articles added one by one.

    >>> with Detector.in_memory() as d:
    ...     text = "أعلن المتحدث باسم الكرملين اليوم أن الرئيس سيزور القاهرة الأسبوع المقبل"
    ...     first = d.add(Article(id="a", text=text))
    ...     copy = d.add(Article(id="b", text="موسكو - وكالات: " + text))
    >>> first.action, copy.action, copy.story_id
    ('new', 'copy', 'a')
    """

    def __init__(self, config: DetectorConfig | None = None, store: SQLiteStore | None = None, *,
                 keep_texts: bool | None = None, keep_details: bool = True) -> None:
        self.config = config or DetectorConfig()
        sk, mc = self.config.sketch, self.config.match
        self._signer = _signer(sk)
        check_banding(sk.num_perm, mc.bands, mc.rows)
        self._store = store
        # Texts are the bulk of an article; with a store they are read back from it when asked.
        self._keep_texts = store is None if keep_texts is None else keep_texts
        if not keep_details and (store is not None or self._keep_texts):
            raise ValueError("keep_details=False is for a detector in memory that keeps no texts (keep_texts=False)")
        # The display fields (title, url, byline, credit text, first seen) of a detector that keeps
        # no texts are archived, unless nothing will read them.
        self._keep_details = keep_details
        self._closed = False
        self._kernels: ModuleType | None = None  # dedup._compiled, after compile()
        self._archive = _Archive(store)
        self._reset()
        if store is not None:
            if len(store) >= self.COMPILE_FROM:  # a large state: replayed with the kernels too
                self.compile()
            self._replay(store)

    #: From this many articles on, a detector matches with compiled kernels (:meth:`compile`).
    #: Measured with ``dedup scan``: a 3,000-article dump took as long either way, a 10,000-article
    #: one 1 s less compiled (3.3 s against 4.1-5.2 s), the 15,000 of the dev set 0.35 s less.
    COMPILE_FROM = 5_000

    def compile(self) -> None:
        """Match with compiled kernels from now on: the same results, less time per article once
        loaded (loading costs about 0.5 s). Done by itself once the detector holds
        :attr:`COMPILE_FROM` articles; a caller that knows a large load is coming can do it first."""
        from dedup import _compiled

        self._kernels = _compiled
        self._shared.compile()
        self._index.compile()

    @property
    def compiled(self) -> bool:
        """Whether matching runs in compiled kernels (see :meth:`compile`)."""
        return self._kernels is not None

    def _reset(self) -> None:
        mc = self.config.match
        # Articles are numbered by arrival (seq); these lists are indexed by that number.
        self._rows: list[StoredArticle] = []
        self._facts: list[CanonicalFacts] = []
        self._days = array.array("d")  # calendar day of each article (NaN: unknown)
        self._embedded = bytearray()  # 1 for an article appended to a page
        # Shingle sets of the articles still in the template window (the rows hold none; those
        # before ``_counted_from`` are in the archive).
        self._live = _LiveShingles()
        self._seq: dict[str, int] = {}
        self._index = BandIndex(mc.bands, mc.rows, mc.bucket_limit)
        self._shared = SharedTextCounter(mc.shared_text_slots_log2)
        if self._kernels is not None:
            self._shared.compile()
            self._index.compile()
        self._counted_from = 0  # articles before this number no longer count as shared text
        self._newest_day = -math.inf
        self._graph = StoryGraph()
        # Shingle sets of articles before ``_counted_from`` (out of the template window).
        self._archive.close()
        self._archive = _Archive(self._store)
        # Per story, its two best-ranked members, best first (the canonical policy only compares those).
        self._top2: dict[int, list[CanonicalFacts]] = {}

    def _replay(self, store: SQLiteStore) -> None:
        numbers: list[int] = []
        signatures: list[Signature] = []
        links = store.load_links()
        pending = next(links, None)
        for row in store.load(with_text=self._keep_texts):
            self._count(row.shingles, row.embedded_in, _day_of(row.published, row.fetched_at))
            self._remember(row, row.shingles, _day_of(row.published, row.fetched_at))
            earlier: dict[int, float] = {}
            while pending is not None and pending[0] == row.seq:
                earlier[pending[1]] = pending[2]
                pending = next(links, None)
            self._graph.add(row.seq, earlier, earlier, leaf=row.embedded_in is not None)
            if row.shingles.size:
                numbers.append(row.seq)
                signatures.append(row.signature)
        if numbers:
            self._index.add(numbers, np.stack(signatures))

    @classmethod
    def open(cls, state_dir: str | Path, config: DetectorConfig | None = None) -> Detector:
        """Open (or create) the state in ``state_dir`` and continue where it stopped."""
        config = config or DetectorConfig()
        return cls(config, SQLiteStore(state_dir, config.sketch.fingerprint))

    @classmethod
    def in_memory(cls, config: DetectorConfig | None = None, *, keep_texts: bool = True,
                  keep_details: bool = True) -> Detector:
        """A detector whose state lives only as long as the object.

        ``keep_texts=False`` keeps no article texts (``record(id).text`` is then empty): for
        callers that only want the clusters of a large dump. With it, ``keep_details=False``
        keeps no display fields either (title, url, byline, credit text, first seen): for
        callers that want only each article's story and decision (:meth:`assignments`,
        :meth:`brief_columns`); :meth:`record` and :meth:`story` then refuse.
        """
        return cls(config, None, keep_texts=keep_texts, keep_details=keep_details)

    # -- adding -------------------------------------------------------------------------------

    def add(self, article: Article) -> Decision:
        """Add one article and say which story it belongs to."""
        return self.add_many([article])[0]

    def add_all(self, articles: Iterable[Article], *, workers: int = 1, chunk_size: int = 1000,
                pool: Executor | None = None, progress: Callable[[int], None] | None = None,
                ahead: SketchAhead | None = None) -> int:
        """Add articles like :meth:`add_many`, keeping no :class:`Decision` for each (for bulk
        loads of millions: read the results with :meth:`assignments` and :meth:`record`).
        ``ahead`` holds sketches computed before (its pool is then used).
        Returns how many articles were read."""
        counted = 0

        def counting() -> Iterator[Article]:
            nonlocal counted
            for article in articles:
                counted += 1
                yield article

        if ahead is not None:
            pool = ahead.pool
        self._add(counting(), workers, chunk_size, pool, progress, keep=False, ahead=ahead)
        return counted

    def add_many(self, articles: Iterable[Article], *, workers: int = 1, chunk_size: int = 1000,
                 pool: Executor | None = None, progress: Callable[[int], None] | None = None) -> list[Decision]:
        """Add articles in the given order (one transaction for the batch).

        ``articles`` may be a lazy iterable: with workers it is read a chunk at a time, as the
        workers need more. With ``workers`` > 1 the pure steps (cleaning, shingling, signing) run
        in that many processes, ``chunk_size`` articles at a time, while this process adds the
        chunks already done; the decisions are the same whatever the number of workers or the
        chunk size. A refused batch (e.g. :class:`DuplicateIdError`) leaves a detector with a
        store as it was; an in-memory detector keeps the chunks added before the failing one.
        ``articles`` is read a chunk at a time either way, so a dump larger than memory can be
        added (see :meth:`add_all`).
        Worker processes are spawned, so a script that uses them needs the usual
        ``if __name__ == "__main__":`` guard. ``pool`` lends an executor started earlier (see
        :func:`worker_pool`), so that its start-up overlaps other work. ``progress`` is called
        with the number of articles added after each chunk.
        """
        return self._add(articles, workers, chunk_size, pool, progress, keep=True)

    def _add(self, articles: Iterable[Article], workers: int, chunk_size: int, pool: Executor | None,
             progress: Callable[[int], None] | None, *, keep: bool, ahead: SketchAhead | None = None
             ) -> list[Decision]:
        config = self.config.sketch
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if ahead is not None and not ahead.digests and self._rows:
            raise ValueError("SketchAhead(digests=False) is for a detector that holds no articles yet: "
                             "this one holds some, whose ids the articles' digests must be compared with")
        stream = iter(articles)
        # A small first chunk gets this process adding while the workers do the rest.
        head = list(itertools.islice(stream, min(chunk_size, 250)))
        # A few articles are sketched here, unless sketches were started ahead: those come from
        # the workers whatever the count (and an article read back from a dump's run may come
        # without its text, which only its place holds).
        if ahead is None and ((workers <= 1 and pool is None) or len(head) < min(chunk_size, 250)):
            self._check_open()

            def in_chunks() -> list[Decision]:
                decided: list[Decision] = []
                for chunk in itertools.chain([head] if head else [], _batched(stream, chunk_size)):
                    self._refuse_changed_ids(chunk)
                    done = self._add_batch(prepare_many(chunk, config), keep)
                    if keep:
                        decided += done
                    if progress is not None:
                        progress(len(chunk))
                return decided

            return self._in_transaction(in_chunks)
        self._check_open()
        # Chunks in flight: enough to keep every worker busy while this process adds a batch that
        # takes longer than most (with one a worker plus one, the cores were idle 4-5% of the
        # adding at 100k articles; with two, 2-3%).
        in_flight = 2 * max(workers, 1) + 1

        def run(executor: Executor) -> list[Decision]:
            decisions: list[Decision] = []
            pending: deque[tuple[list[Article], Callable[[], list[Sketch]]]] = deque()

            def add_next() -> None:
                chunk, sketched = pending.popleft()
                sketches = sketched()
                # With the digests the workers computed: an article read back from a dump's run
                # may come here without its text (see dedup.dump.Dump's ``texts``).
                self._refuse_changed_ids(chunk, [k.digest for k in sketches])
                done = self._add_batch([_new_prepared(a, k, None) for a, k in zip(chunk, sketches, strict=True)], keep)
                if keep:
                    decisions.extend(done)
                if progress is not None:
                    progress(len(chunk))

            for chunk in itertools.chain([head], _batched(stream, chunk_size)):
                if ahead is not None:
                    pending.append((chunk, ahead._take(chunk, config)))
                else:
                    future = executor.submit(_sketch_fields, [_fields(a) for a in chunk], config)
                    pending.append((chunk, functools.partial(_unpack, future)))
                if len(pending) > in_flight:
                    add_next()
            while pending:
                add_next()
            return decisions

        if pool is not None:
            return self._in_transaction(lambda: run(pool))

        def own_pool() -> list[Decision]:
            with worker_pool(workers) as executor:
                return run(executor)

        return self._in_transaction(own_pool)

    def add_prepared(self, prepared: list[Prepared]) -> list[Decision]:
        """Add articles whose shingles and signatures were computed elsewhere (e.g. in workers)."""
        self._check_open()
        self._refuse_changed_ids([p.article for p in prepared], [p.sketch.digest for p in prepared])
        return self._in_transaction(lambda: self._add_batch(prepared))

    def _in_transaction(self, work: Callable[[], list[Decision]]) -> list[Decision]:
        try:
            if self._store is None:
                return work()
            try:
                with self._store.transaction():
                    return work()
            except BaseException:
                # The transaction rolled back: rebuild memory from what is stored, so the two agree.
                self._reset()
                self._replay(self._store)
                raise
        except SystemError as exc:
            # Ctrl-C (or a signal handler's SystemExit) that lands while compiled code calls back
            # into Python comes out of it as a SystemError: it is still the interruption.
            interruption = _interruption_behind(exc)
            if interruption is None:
                raise
            raise interruption from None

    def _add_batch(self, batch: list[Prepared], keep: bool = True) -> list[Decision]:
        """Add a batch; its decisions (one a page, its appended articles inside), when ``keep``."""
        if self._kernels is None and len(self._rows) >= self.COMPILE_FROM:
            self.compile()
        # Appended articles split off a page follow it, as articles of their own.
        prepared: list[Prepared] = []
        for p in batch:
            prepared.append(p)
            for k, (text, sketch) in enumerate(p.sketch.embedded, 1):
                a = p.article
                segment = Article(id=f"{a.id}{EMBEDDED_MARK}{k}", text=text, url=a.url, outlet=a.outlet,
                                  published=a.published, fetched_at=a.fetched_at)
                prepared.append(Prepared(segment, sketch, embedded_in=a.id))
        # Number the articles that are new (first time their id is seen) in arrival order, and
        # find every candidate of the batch in one vectorized pass over the band index.
        fresh: dict[int, int] = {}
        seen: set[str] = set()
        for i, p in enumerate(prepared):
            if p.article.id not in self._seq and p.article.id not in seen:
                seen.add(p.article.id)
                fresh[i] = len(self._rows) + len(fresh)
        indexed = [i for i in fresh if prepared[i].shingles.size]
        found: dict[int, npt.NDArray[np.int64]] = {}
        if indexed:
            signatures = np.stack([prepared[i].signature for i in indexed])
            lists = self._index.add_batch([fresh[i] for i in indexed], signatures)
            found = dict(zip(indexed, lists, strict=True))
        empty = np.empty(0, dtype=np.int64)
        verified = self._count_and_verify(prepared, fresh, found) if self._kernels is not None and fresh else {}
        decisions: list[Decision] = []
        for i, p in enumerate(prepared):
            decision = self._add_one(p, found.get(i, empty), keep, verified.get(i))
            if decision is None:
                continue
            if p.embedded_in is None:
                decisions.append(decision)
            else:  # reported with its page
                decisions[-1] = dataclasses.replace(decisions[-1], embedded=(*decisions[-1].embedded, decision))
        return decisions

    def _count_and_verify(self, prepared: list[Prepared], fresh: dict[int, int],
                          found: dict[int, npt.NDArray[np.int64]]) -> dict[int, tuple[float, list[_Link]]]:
        """What :meth:`_count` then :meth:`_verify` give each new article of a batch (its day and
        links), in one compiled pass over the batch: a day and links per batch position.

        The batch's days, kinds and shingle sets are kept here; :meth:`_add_one` adds the rest.
        The sets that leave the template window during the batch are archived after it.
        """
        kernels = self._kernels
        assert kernels is not None
        mc = self.config.match
        order = list(fresh)  # batch positions of the new articles, in number order
        first_seq = len(self._rows)
        if [fresh[i] for i in order] != list(range(first_seq, first_seq + len(order))):
            raise AssertionError("new articles are numbered in arrival order")
        news = [prepared[i] for i in order]
        day_list = [_day(p.article) for p in news]
        self._days.extend(day_list)
        self._embedded.extend(p.embedded_in is not None for p in news)
        self._live.extend([p.shingles for p in news])
        days = np.frombuffer(self._days, dtype=np.float64)
        embedded = np.frombuffer(self._embedded, dtype=np.bool_)
        windows = np.array([mc.embedded_window_days if p.embedded_in else mc.window_days for p in news],
                           dtype=np.float64)
        empty = np.empty(0, dtype=np.int64)
        lists = [found.get(i, empty) for i in order]
        bounds = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([c.size for c in lists], out=bounds[1:])
        candidates = np.concatenate(lists) if lists else empty
        # The candidates whose sets are archived already, and that the window lets through.
        held_from = self._counted_from
        owner = np.repeat(np.arange(len(lists)), np.diff(bounds))
        early = candidates < held_from
        if early.any():
            c, own = candidates[early], owner[early]
            day = np.asarray(day_list)[own]
            near = np.isnan(day) | np.isnan(days[c]) | (np.abs(days[c] - day) <= windows[own])
            archived_seqs = np.unique(c[near])
        else:
            archived_seqs = empty
        archived = [self._archive.get(c) for c in archived_seqs.tolist()]
        archived_ends = np.cumsum([a.size for a in archived], dtype=np.int64)
        archived_sets = np.concatenate(archived) if archived else np.empty(0, dtype=np.uint32)
        live = self._live
        counts, mask = self._shared.table
        seqs, containment, jaccard, link_bounds, counted_from, newest_day, missing = kernels.count_and_verify(
            first_seq, live.sets, live.ends, live.base, days, embedded, windows, candidates, bounds,
            archived_seqs, archived_ends, archived_sets, counts, mask, SharedTextCounter.CAP, mc.template_docs,
            mc.min_shared, mc.threshold, float(mc.template_window_days), self._counted_from, self._newest_day)
        if missing >= 0:
            raise AssertionError(f"article {missing}'s archived shingles were not read for verification")
        # Off to the archive, in number order: the sets that left the template window.
        if counted_from > self._counted_from:
            start = live.ends[self._counted_from - 1] if self._counted_from else 0
            ends = live.ends[self._counted_from : counted_from]
            self._archive.put_range(self._counted_from, live.sets[start - live.base : ends[-1] - live.base],
                                    ends - start)
        self._counted_from, self._newest_day = counted_from, newest_day
        live.release(counted_from)
        links = list(map(_Link._make, zip(seqs.tolist(), containment.tolist(), jaccard.tolist(), strict=True)))
        at = link_bounds.tolist()
        return {i: (day_list[j], links[at[j] : at[j + 1]]) for j, i in enumerate(order)}

    def _refuse_changed_ids(self, articles: list[Article], digests: list[str] | None = None) -> None:
        """Check every id before changing anything, so a refused batch leaves no trace.

        Only ids that repeat (in the batch or the state) need their content compared; their
        digests are computed here when ``digests`` is not given.
        """
        counts = Counter(a.id for a in articles)
        seen: dict[str, str] = {}
        for i, a in enumerate(articles):
            known = self._seq.get(a.id)
            if known is None and counts[a.id] == 1:
                continue
            digest = digests[i] if digests is not None else content_hash(a)
            previous = self._rows[known].content_hash if known is not None else seen.get(a.id)
            if previous is not None and previous != digest:
                raise DuplicateIdError(a.id)
            seen[a.id] = digest

    def _add_one(self, p: Prepared, candidates: npt.NDArray[np.int64], keep: bool = True,
                 verified: tuple[float, list[_Link]] | None = None) -> Decision | None:
        """Add one article; ``verified`` is its day and links when its batch was counted and
        verified already (:meth:`_count_and_verify`)."""
        article = p.article
        digest = p.sketch.digest
        known = self._seq.get(article.id)
        if known is not None:
            if self._rows[known].content_hash != digest:
                raise DuplicateIdError(article.id)
            return self._decision_of(known, "unchanged") if keep else None
        seq = len(self._rows)
        if verified is None:
            day = _day(article)
            # Count this article's shingles first: text it shares with many others is common now.
            self._count(p.shingles, p.embedded_in, day)
            # An article appended to a page is often older than the page: it is compared more widely.
            mc = self.config.match
            links = self._verify(p.shingles, candidates, day,
                                 mc.embedded_window_days if p.embedded_in else mc.window_days)
        else:
            day, links = verified
        # An article appended to a page joins the story it matches best, and links nothing else.
        graph = self._graph
        weights = {link.seq: round(link.similarity, 6) for link in links} if links else {}
        update = graph.add(seq, weights, weights, leaf=p.embedded_in is not None)
        story = graph.story(seq)
        # A story that only gained this article keeps its two best, updated below; others forget.
        grew = update.stories == [story] and update.moved == {seq: story} and story != seq
        for changed in update.stories:
            if not (grew and changed == story):
                self._top2.pop(changed, None)
        # Alone in its story means new: the story of the latest article is named after it only then.
        kind = "compilation" if graph.is_compilation(seq) else "copy" if story != seq else "new"
        # The best match: the closest link inside the article's story (any link for a compilation).
        best = None
        if links:
            inside = [link for link in links if graph.story(link.seq) == story] or links
            best = min(inside, key=_closeness)
        credits = p.sketch.credits
        credit = credits[0] if credits else None
        # Without a store the row is built as memory keeps it (nothing reads the rest back); a
        # detector that keeps no texts keeps the display fields in the archive (if it keeps them).
        stored = self._store is not None
        details = None
        if not self._keep_texts and self._keep_details:
            details = (article.title, article.url, article.byline, credit.text if credit else None, article.fetched_at)
        blank = not self._keep_texts and not stored
        row = _new_row(
            seq=seq,
            id=article.id,
            content_hash=digest,
            story_id=self._rows[story].id if story != seq else article.id,
            action=kind,
            best_match_id=self._rows[best.seq].id if best else None,
            similarity=round(best.similarity, 4) if best else 0.0,
            containment=round(best.containment, 4) if best else 0.0,
            title="" if blank else article.title,
            url="" if blank else article.url,
            outlet=article.outlet,
            published=article.published,
            byline="" if blank else article.byline,
            fetched_at="" if blank else article.fetched_at,
            outlet_is_agency=article.outlet_is_agency or (p.sketch.agency_outlet and p.embedded_in is None),
            credit=credit.label if credit else None,
            credit_where=credit.where if credit else None,
            credit_text=None if blank or not credit else credit.text,
            credit_via=(" > ".join([c.label for c in credits[1:]]) or None) if len(credits) > 1 else None,
            embedded_in=p.embedded_in,
            shingles=p.shingles if stored else _NO_SHINGLES,
            signature=p.signature if stored else _NO_SIGNATURE,
            text=article.text if stored or self._keep_texts else "",
        )
        self._remember(row, p.shingles, day, details, counted=verified is not None, blank=blank)
        if grew and story in self._top2:
            self._top2[story] = sorted([*self._top2[story], self._facts[seq]], key=CanonicalFacts.rank)[:2]
        if self._store is not None:
            self._store.insert(row)
            self._store.insert_links(seq, [(link.seq, link.containment, round(link.similarity, 6)) for link in links])
            moved = [(self._rows[root].id, node) for node, root in update.moved.items() if node != seq]
            if moved:
                self._store.move(moved)
        return self._decision_of(seq, kind) if keep else None

    def _count(self, shingles: HashArray, embedded_in: str | None, day: float) -> None:
        """Count an article's shingles as text shared by articles (before matching it), and stop
        counting the articles older than the template window (in arrival order, as far as they
        are older than the newest day seen).

        An article appended to a page repeats one published before: it is not counted again.
        Undated articles stay counted.
        """
        if embedded_in is None:
            self._shared.add(shingles)
        if math.isnan(day):
            return
        self._newest_day = max(self._newest_day, day)
        horizon = self._newest_day - self.config.match.template_window_days
        rows, days = self._rows, self._days
        while self._counted_from < len(rows):
            old = days[self._counted_from]
            if not math.isnan(old) and old >= horizon:
                break
            seq = self._counted_from
            shingles = self._live.get(seq)
            if not math.isnan(old) and rows[seq].embedded_in is None:
                self._shared.remove(shingles)
            # Out of the window: only articles out of time order still meet it; off to the archive.
            self._archive.put(seq, shingles)
            self._counted_from += 1
        self._live.release(self._counted_from)

    def _remember(self, row: StoredArticle, shingles: HashArray, day: float,
                  details: tuple[str | None, ...] | None = None, *, counted: bool = False, blank: bool = False) -> None:
        """Keep a stored article in memory (its story is the graph's business); ``day`` is its
        :func:`_day_of` (an appended article has its page's). ``counted``: its day, shingles
        and kind are already kept (:meth:`_count_and_verify` did it for its batch). ``blank``: the
        row was built without display fields, text, shingles and signature.

        The signature is already in the band index, and the text stays in the store (or is kept
        only when asked): neither is held in the row, nor the shingles (kept beside it, see
        :meth:`_shingles`). A detector that keeps no texts (a bulk load or a long-running state)
        archives the display fields (``details``, else read from ``row``), unless it keeps none
        (``keep_details=False``).
        """
        if not self._keep_texts:
            if self._keep_details:
                self._archive.put_details(row.seq, details or tuple(getattr(row, f) for f in _DETAILS))
            if not blank and any((row.title, row.url, row.byline, row.credit_text, row.fetched_at, row.text,
                                  row.signature.size, row.shingles.size)):
                row = dataclasses.replace(row, title="", url="", byline="", credit_text=None, fetched_at="",
                                          text="", signature=_NO_SIGNATURE, shingles=_NO_SHINGLES)
        elif row.signature.size or row.shingles.size:
            row = dataclasses.replace(row, signature=_NO_SIGNATURE, shingles=_NO_SHINGLES)
        if not counted:
            self._live.append(shingles)
        self._rows.append(row)
        self._seq[row.id] = row.seq
        self._facts.append(
            _new_facts(
                article_id=row.id,
                outlet_is_agency=row.outlet_is_agency,
                credited_agency=row.credit if row.credit in AGENCY_KEYS else None,
                published=row.published,
                completeness=int(shingles.size),
                embedded=row.embedded_in is not None,
            )
        )
        if not counted:
            self._days.append(day)
            self._embedded.append(row.embedded_in is not None)

    # -- matching -----------------------------------------------------------------------------

    def _verify(self, shingles: HashArray, candidates: npt.NDArray[np.int64], day: float,
                window: int = 0, *, compiled: bool = True) -> list[_Link]:
        """The candidates that verification confirms as linked to a text, in seq order (those
        published at most ``window`` days from ``day``, when it is known)."""
        mc = self.config.match
        if shingles.size == 0 or candidates.size == 0:
            return []
        if compiled and self._kernels is not None:
            live = self._live
            seqs, containment, jaccard, archived = self._kernels.verify(
                shingles, candidates, np.frombuffer(self._days, dtype=np.float64), day, float(window),
                live.sets, live.ends, live.base, *self._shared.table, mc.template_docs, mc.min_shared, mc.threshold,
                live.first)
            # Those whose sets are in the archive (older numbers: their links come first) by numpy.
            links = self._verify(shingles, archived, day, window, compiled=False) if archived.size else []
            found = zip(seqs.tolist(), containment.tolist(), jaccard.tolist(), strict=True)
            return links + [_Link(seq, c, j) for seq, c, j in found]
        if not math.isnan(day):
            # (A transient view: the array stays free to grow.)
            days = np.frombuffer(self._days, dtype=np.float64)[candidates]
            candidates = candidates[np.isnan(days) | (np.abs(days - day) <= window)]
        seqs = candidates.tolist()
        if not seqs:
            return []
        common = self._shared.common(shingles, mc.template_docs)
        shared, containment, jaccard = overlap_many(
            shingles, common, [self._shingles(c) for c in seqs], self._shared, mc.template_docs
        )
        keep = np.flatnonzero((shared >= mc.min_shared) & (containment >= mc.threshold)).tolist()
        return [_Link(seqs[i], float(containment[i]), float(jaccard[i])) for i in keep]

    def _shingles(self, seq: int) -> HashArray:
        return self._archive.get(seq) if seq < len(self._archive) else self._live.get(seq)

    def _check_details(self) -> None:
        if not self._keep_details:
            raise DedupError("this detector keeps no display fields (title, url, byline, credit text, first seen): "
                             "open it with keep_details=True to read records and stories")

    def _display_fields(self, seq: int) -> tuple[str, str, str]:
        """An article's title, url and first-seen time, from the archive when memory left them there."""
        self._check_details()
        if self._archive.has_details(seq):
            title, url, _, _, fetched_at = self._archive.get_details(seq)
            return title or "", url or "", fetched_at or ""
        row = self._rows[seq]
        return row.title, row.url, row.fetched_at

    def _full_row(self, seq: int) -> StoredArticle:
        """An article's row with what memory left on disk read back (not the text)."""
        self._check_details()
        row = self._rows[seq]
        if self._archive.has_details(seq):
            title, url, byline, credit_text, fetched_at = self._archive.get_details(seq)
            row = dataclasses.replace(row, title=title or "", url=url or "", byline=byline or "",
                                      credit_text=credit_text, fetched_at=fetched_at or "")
        # A copy: the live sets' memory is reused once they moved (see _LiveShingles).
        return dataclasses.replace(row, shingles=self._shingles(seq).copy())

    # -- reading ------------------------------------------------------------------------------

    def _canonical_of(self, story: int) -> tuple[str, str]:
        best = self._top2.get(story)
        if best is None:
            best = self._top2[story] = heapq.nsmallest(2, (self._facts[m] for m in self._graph.members(story)),
                                                       key=CanonicalFacts.rank)
        return canonical_policy(best)

    def _canonical_id(self, story: int) -> str:
        """``_canonical_of(story)[0]``, without the reason (the member that ranks first)."""
        best = self._top2.get(story)
        if best is not None:
            return best[0].article_id
        members = self._graph.members(story)
        if len(members) == 1:
            return self._facts[members[0]].article_id
        return min((self._facts[m] for m in members), key=CanonicalFacts.rank).article_id

    def _decision_of(self, seq: int, action: str) -> Decision:
        row = self._rows[seq]
        story = self._graph.story(seq)
        return Decision(
            article_id=row.id,
            story_id=self._rows[story].id,
            action=action,  # type: ignore[arg-type]
            canonical_id=self._canonical_of(story)[0],
            best_match_id=row.best_match_id,
            similarity=row.similarity,
            containment=row.containment,
        )

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._seq

    def _seq_of(self, article_id: str) -> int:
        seq = self._seq.get(article_id)
        if seq is None:
            raise KeyError(f"no article with id {article_id!r} in this detector")
        return seq

    def record(self, article_id: str, *, with_text: bool = True) -> StoredArticle:
        """What was stored for an article: its fields, text, credit, current story and decision
        figures (``with_text=False``: the text is left empty, which saves reading it back)."""
        seq = self._seq_of(article_id)
        row = self._full_row(seq)
        story_id = self._rows[self._graph.story(seq)].id
        if self._keep_texts or self._store is None or not with_text:
            return row if row.story_id == story_id else dataclasses.replace(row, story_id=story_id)
        return dataclasses.replace(row, story_id=story_id, text=self._store.text(seq))

    def story_of(self, article_id: str) -> Story:
        """The story an article belongs to now."""
        return self._story(self._graph.story(self._seq_of(article_id)))

    def story(self, story_id: str) -> Story:
        """A story with its canonical copy and provenance (members in time order).

        A story is named after its earliest member; a story that has since merged into an
        earlier one is found under that one's id (see :meth:`story_of`).
        """
        seq = self._seq.get(story_id)
        if seq is None or self._graph.story(seq) != seq:
            hint = f"; article {story_id!r} is now in story {self._rows[self._graph.story(seq)].id!r}" if seq else ""
            raise KeyError(f"no story with id {story_id!r}{hint}")
        return self._story(seq)

    def _story(self, story: int) -> Story:
        canonical_id, reason = self._canonical_of(story)
        canon_seq = self._seq[canonical_id]
        canon = self._rows[canon_seq]
        canon_shingles = self._shingles(canon_seq)
        limit = self.config.match.template_docs
        common = self._shared.common(canon_shingles, limit)
        members = self._graph.members(story)
        rows = self._rows
        # The story's source is known when its canonical copy is an agency's or some member credits one.
        sourced = canon.outlet_is_agency or any(rows[m].credit for m in members)
        entries = []
        for m in members:
            row = rows[m]
            title, url, fetched_at = self._display_fields(m)
            is_canonical = m == canon_seq
            shingles = canon_shingles if is_canonical else self._shingles(m)
            o = None if is_canonical else overlap(shingles, self._shared.common(shingles, limit),
                                                  canon_shingles, common)
            flags = []
            if not is_canonical:
                if sourced and not row.credit and not row.outlet_is_agency:
                    flags.append("uncredited")
                if shingles.size < 0.8 * canon_shingles.size:
                    flags.append("cut")
                elif shingles.size > 1.25 * canon_shingles.size:
                    flags.append("extended")
            if row.embedded_in:
                flags.append("embedded")
            entries.append(
                ProvenanceEntry(
                    article_id=row.id,
                    outlet=row.outlet,
                    url=url,
                    title=title,
                    published=row.published,
                    fetched_at=fetched_at,
                    credit=row.credit or "",
                    credit_where=row.credit_where or "",
                    credit_via=row.credit_via or "",
                    is_canonical=is_canonical,
                    similarity=1.0 if o is None else round(o.jaccard, 4),
                    containment=1.0 if o is None else round(o.containment, 4),
                    flags=tuple(flags),
                    embedded_in=row.embedded_in or "",
                )
            )
        entries.sort(key=lambda e: (e.published or "\uffff", self._seq[e.article_id]))
        return Story(story_id=self._rows[story].id, canonical_id=canonical_id, canonical_reason=reason,
                     provenance=tuple(entries))

    def stories(self) -> Iterator[Story]:
        """Every story, in the order they were founded."""
        for story in self._graph.stories():
            yield self._story(story)

    @property
    def story_count(self) -> int:
        """How many stories there are (a story of one article counts)."""
        return len(self._graph.stories())

    def recent_stories(self, limit: int = 20) -> list[Story]:
        """The stories that most recently gained an article, most recent first."""
        found: list[int] = []
        for seq in range(len(self._rows) - 1, -1, -1):
            story = self._graph.story(seq)
            if story not in found:
                found.append(story)
                if len(found) >= limit:
                    break
        return [self._story(s) for s in found]

    def brief_records(self) -> Iterator[tuple[StoredArticle, str, str]]:
        """(record, story id, canonical id) for every article, in the order they were added,
        with only what memory holds: the decision figures, outlet, published and credit, but
        no text, shingles or display fields (title, url, byline, credit text, first seen), and
        ``story_id`` as first decided (the current story is the second item). Cheap for
        millions of articles; :meth:`record` has the whole of one."""
        rows = self._rows
        canonical: dict[int, str] = {}  # by story: its members follow one another closely
        for seq, row in enumerate(rows):
            story = self._graph.story(seq)
            chosen = canonical.get(story)
            if chosen is None:
                chosen = canonical[story] = self._canonical_of(story)[0]
            yield row, rows[story].id, chosen

    def brief_columns(self, fields: Sequence[str], start: int = 0, batch_rows: int = 10_000
                      ) -> Iterator[dict[str, list[Any]]]:
        """:meth:`brief_records` of the articles numbered from ``start`` on, as columns, a batch
        of ``batch_rows`` articles at a time: a list for each record field named in ``fields``,
        and ``story`` and ``canonical`` (the ids). For a table of millions of rows, without an
        object a row."""
        chosen: dict[int, str] = {}  # canonical ids by story
        every = self._rows
        for first in range(start, len(every), batch_rows):
            rows = every[first : first + batch_rows]
            stories = list(map(self._graph.story, range(first, first + len(rows))))
            canonical: list[str] = []
            for story in stories:
                found = chosen.get(story)
                if found is None:
                    found = chosen[story] = self._canonical_id(story)
                canonical.append(found)
            columns: dict[str, list[Any]] = {name: list(map(operator.attrgetter(name), rows)) for name in fields}
            columns["story"] = [every[story].id for story in stories]
            columns["canonical"] = canonical
            yield columns

    def assignments(self) -> Iterator[tuple[str, str, str]]:
        """(article id, story id, canonical id) for every article, in the order they were added."""
        for row, story, canonical in self.brief_records():
            yield row.id, story, canonical

    def query(self, text: str, limit: int = 5) -> list[StoryMatch]:
        """The stories nearest to ``text``, best first, without adding it."""
        self._check_open()
        sk = self.config.sketch
        shingles = shingle_hashes(clean(text).main, sk.shingle_words, sk.hash_seed)  # cleaned as when added
        links = self._verify(shingles, self._index.query(self._signer.sign(shingles)), math.nan)
        best: dict[int, _Link] = {}
        for link in links:
            story = self._graph.story(link.seq)
            if story not in best or (link.containment, link.similarity) > (best[story].containment,
                                                                            best[story].similarity):
                best[story] = link
        ranked = sorted(best.items(), key=lambda kv: (-kv[1].containment, -kv[1].similarity, kv[0]))[:limit]
        return [StoryMatch(self._rows[story].id, self._canonical_of(story)[0], self._rows[link.seq].id,
                           link.containment, link.similarity) for story, link in ranked]

    # -- lifecycle ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Detector is closed; open a new one with Detector.open(state_dir)")

    def close(self) -> None:
        if not self._closed:
            self._archive.close()
            if self._store is not None:
                self._store.close()
        self._closed = True

    def __enter__(self) -> Detector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_NO_SIGNATURE: Signature = np.empty(0, dtype=np.uint32)
_NO_SHINGLES: HashArray = np.empty(0, dtype=np.uint32)
# Built for every article: their own __init__s are two to three times slower (see positional).
_new_row = positional(StoredArticle)
_new_facts = positional(CanonicalFacts)
_new_sketch = positional(Sketch)
_new_prepared = positional(Prepared)


def warm_kernels() -> None:
    """Load the compiled kernels that matching a large load calls: numba loads each from its
    cache at its first call (0.26 s of the first batch's 0.28 s at 100k articles, while the
    workers ran out of batches to sketch). Two made-up copies are matched in a detector of their
    own, and the band table grown once, which calls them as a scan does. ``dedup scan`` calls
    this in a thread while it reads a large dump."""
    from dedup import _compiled

    with Detector.in_memory(keep_texts=False, keep_details=False) as detector:
        detector.compile()
        shingles = np.arange(1, 4001, 10, dtype=np.uint32)
        sketch = _new_sketch(shingles, _signer(detector.config.sketch).sign(shingles), "", (), (), False)
        detector.add_prepared([_new_prepared(Article(id=f"warm-{i}", text="", published="2020-01-01"), sketch, None)
                               for i in range(2)])
    _compiled.band_table_grown(np.zeros(2, dtype=np.uint64), np.full(2, -1, dtype=np.int32), 4)


def _batched(items: Iterator[Article], size: int) -> Iterator[list[Article]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _day_of(published: str, fetched_at: str = "") -> float:
    """The calendar day (proleptic ordinal) of an ISO-8601 time, as written; NaN when unknown.

    >>> _day_of("2015-07-21 02:51:32") - _day_of("", "2015-07-20T23:00:00+03:00")
    1.0
    >>> import math; math.isnan(_day_of("yesterday"))
    True
    """
    for value in (published, fetched_at):
        text = value.strip()
        if len(text) >= 10:
            day = _DAYS.get(text[:10])
            if day is None:
                try:
                    day = float(datetime.date.fromisoformat(text[:10]).toordinal())
                except ValueError:
                    day = math.nan
                if len(_DAYS) >= 100_000:  # dates are few; other text may not be
                    _DAYS.clear()
                _DAYS[text[:10]] = day
            if not math.isnan(day):
                return day
    return math.nan


_DAYS: dict[str, float] = {}  # _day_of's days by the first ten characters (NaN: not a date)


def _day(article: Article) -> float:
    return _day_of(article.published, article.fetched_at)
