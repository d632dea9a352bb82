"""Reading article dumps and writing results, with errors that name the file and line."""

from __future__ import annotations

import contextlib
import glob
import gzip
import heapq
import io
import itertools
import json
import os
import re
import shutil
import tempfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import polars as pl

from dedup._errors import InputError
from dedup._model import Article, Story, positional
from dedup._runs import Lines, Place, content_digest, read_run, time_order_key, write_line_run, write_run

_OPTIONAL = ("title", "url", "outlet", "published", "byline", "fetched_at")


@dataclass(slots=True)
class ReadReport:
    """What a read skipped, one line each (with ``skip_bad``)."""

    skipped: list[str] = field(default_factory=list)
    repeated: int = 0


@dataclass(frozen=True, slots=True)
class Columns:
    """Which input column holds each Article field (``--id-col`` ... on the command line)."""

    id: str = "id"
    text: str = "text"
    title: str = "title"
    url: str = "url"
    outlet: str = "outlet"
    published: str = "published"
    byline: str = "byline"
    fetched_at: str = "fetched_at"
    outlet_is_agency: str = "outlet_is_agency"

    def rename(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A row with its columns renamed to the Article field names."""
        if self == _DEFAULT_COLUMNS:
            return obj
        return {name: obj.get(column) for name, column in zip(_FIELDS, self._columns(), strict=True)}

    def _columns(self) -> tuple[str, ...]:
        return tuple(getattr(self, f) for f in _FIELDS)


_FIELDS = ("id", "text", "title", "url", "outlet", "published", "byline", "fetched_at", "outlet_is_agency")
_DEFAULT_COLUMNS = Columns()
FORMATS = ".jsonl, .ndjson (plain, .gz or .zst), .csv, .parquet"
_JSONL = tuple(f"{base}{comp}" for base in (".jsonl", ".ndjson", ".json") for comp in ("", ".gz", ".zst"))


def _open_binary(path: str) -> IO[bytes]:
    """A file opened for reading bytes, decompressing .gz and .zst."""
    lower = path.lower()
    if lower.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    if lower.endswith(".zst"):
        import zstandard

        stream: IO[bytes] = zstandard.open(path, "rb")
        return stream
    return open(path, "rb")


def _corrupt_errors() -> tuple[type[BaseException], ...]:
    import zstandard

    return (OSError, EOFError, zlib.error, zstandard.ZstdError)


_CORRUPT = _corrupt_errors()


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Input paths, with glob patterns expanded (sorted); a pattern that matches nothing is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = sorted(glob.glob(pattern, recursive=True))
            if not found:
                raise InputError(pattern, None, "the pattern matches no file", "Check the pattern and the folder")
            paths += [Path(p) for p in found]
        else:
            paths.append(Path(pattern))
    return paths


class Dump:
    """The articles of one or more dump files in :func:`time_order_key` order, in bounded memory.

    Opening it reads every file once, a batch at a time, checking each row (see
    :func:`read_articles`); up to ``run_rows`` articles are sorted in memory, and larger dumps
    are sorted in runs written to a temporary folder (``TMPDIR``) and merged while iterating, so
    a dump larger than memory is read without holding it. An id repeated across files follows
    the same rule as within one: with the same content it is dropped and counted, with other
    content it is a bad row (the first is kept). The temporary folder goes when the dump is
    closed. ``on_read`` is called with the articles as they are read (in file order, a thousand
    at a time), e.g. to start the work that does not depend on the order.

    With a ``pool`` of worker processes and a dump of :data:`WORKER_READ_BYTES` or more of text,
    the files are read there, a block each, and each block is written to a run of its own in
    time order: this process reads the raw blocks of JSONL lines (or decodes CSV and Parquet
    batches with polars), the workers turn them into articles, and this process checks the ids
    and reports the errors in file order, exactly as when it reads them itself. Until the
    workers are up (a :class:`dedup.detector.WorkerPool` says), this process parses the
    blocks of a plain JSONL file itself, the same way. The articles of a dump read this way
    are not handed to ``on_read`` (the workers are busy reading). A smaller dump is read here,
    while the pool sketches what ``on_read`` hands it: starting workers on polars costs more
    than it saves.
    Articles read from runs (a large dump) are handed to ``on_place`` with their place in the
    run just before they are iterated: a worker can read them back from there
    (:func:`dedup._runs.articles_at`) instead of being sent their texts. With ``texts=False``
    (and ``on_place``) the articles of runs the workers wrote come with empty texts: the
    caller reads them from the places.
    """

    def __init__(self, paths: list[Path], report: ReadReport, skip_bad: bool = False,
                 columns: Columns | None = None, run_rows: int | None = None,
                 on_read: Callable[[list[Article]], None] | None = None, pool: Executor | None = None,
                 on_place: Callable[[Article, Place], None] | None = None, texts: bool = True) -> None:
        self._paths = paths
        self._report = report
        self._skip_bad = skip_bad
        self._columns = columns or _DEFAULT_COLUMNS
        self._run_rows = max(1, RUN_ROWS if run_rows is None else run_rows)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runs: list[Path] = []
        self._dropped: dict[Path, frozenset[int]] = {}  # lines of a run that the id checks dropped
        self._memory: list[Article] = []
        self._count = 0
        self._on_read = on_read
        self._pool = pool if pool is not None and large_dump(paths) else None
        self._on_place = on_place
        self._texts = texts or on_place is None
        self._read_there: set[Path] = set()  # the runs the workers wrote

    def __enter__(self) -> Dump:
        try:
            self._read()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._memory = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __len__(self) -> int:
        return self._count

    def _read(self) -> None:
        seen: dict[str, tuple[int, int]] = {}
        batch: list[Article] = []
        read = 0
        for index, path in enumerate(self._paths):
            if self._pool is not None and str(path).lower().endswith((*_JSONL, ".csv", ".parquet")):
                self._read_in_workers(self._pool, str(path), index, seen)
                continue
            for article in _unique(_rows_of(str(path), self._columns, self._report, self._skip_bad), str(path),
                                   self._report, self._skip_bad, _unit_of(str(path)), seen, index,
                                   self._paths):
                batch.append(article)
                self._count += 1
                if self._on_read is not None and (len(batch) - read >= _ON_READ_ROWS
                                                  or len(batch) >= self._run_rows):
                    self._on_read(batch[read:])
                    read = len(batch)
                if len(batch) >= self._run_rows:
                    self._spill(batch)
                    batch, read = [], 0
        if self._on_read is not None and len(batch) > read:
            self._on_read(batch[read:])
        batch.sort(key=time_order_key)
        if self._runs:
            self._spill(batch)
        else:
            self._memory = batch

    def _run_path(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dedup-scan-")
        return Path(self._tmp.name) / f"run-{len(self._runs):05d}.pickle"

    def _spill(self, batch: list[Article]) -> None:
        if not batch:
            return
        path = self._run_path()
        write_run(path, [(0, a) for a in batch])
        self._runs.append(path)

    def _read_in_workers(self, pool: Executor, path: str, index: int, seen: dict[str, tuple[int, int]]) -> None:
        """Read a file a block at a time in the workers (see the class), in file order: JSONL
        lines are parsed there; CSV and Parquet are decoded here by polars (natively, a batch
        at a time) and their rows are turned into articles there."""
        pending: deque[tuple[Path, Future[list[_Checked]]]] = deque()
        jsonl = path.lower().endswith(_JSONL)
        kind = "parquet" if path.lower().endswith(".parquet") else "csv"
        # An uncompressed JSONL file goes to the workers as byte ranges, which they read themselves.
        plain = jsonl and not path.lower().endswith((".gz", ".zst"))
        blocks: Iterator[tuple[int, Any]] = (_jsonl_spans(path) if plain else _jsonl_blocks(path, None, False) if jsonl
                                             else _table_blocks(path, kind, self._columns))
        corrupt: InputError | None = None
        try:
            while True:
                try:
                    first, block = next(blocks)
                except StopIteration:
                    break
                except InputError as exc:  # a corrupt .gz, a table that cannot be read: the rows before count first
                    corrupt = exc
                    break
                run = self._run_path()
                self._runs.append(run)
                self._read_there.add(run)
                task: Future[list[_Checked]]
                if plain and not _workers_up(pool):  # this process has nothing else to do meanwhile
                    task = Future()
                    try:
                        task.set_result(_read_block(path, first, block, self._columns, str(run)))
                    except Exception as exc:  # as from a worker: raised when the block is checked
                        task.set_exception(exc)
                elif jsonl:
                    task = pool.submit(_read_block, path, first, block, self._columns, str(run))
                else:
                    task = pool.submit(_read_table_block, path, first, block, self._columns, _unit_of(path), str(run))
                pending.append((run, task))
                if len(pending) > _BLOCKS_IN_FLIGHT:
                    self._check_block(*pending.popleft(), path, index, seen)
            while pending:
                self._check_block(*pending.popleft(), path, index, seen)
        except BaseException:
            # Stopped (a bad line, Ctrl-C): blocks still being parsed are let finish, so that
            # no worker writes a run into the folder while it is being removed.
            for _, future in pending:
                future.cancel()
            wait([future for _, future in pending])
            raise
        if corrupt is not None:
            if not self._skip_bad or not jsonl:  # a table that cannot be read stops the reading
                raise corrupt
            self._report.skipped.append(str(corrupt))

    def _check_block(self, run: Path, future: Future[list[_Checked]], path: str, index: int,
                     seen: dict[str, tuple[int, int]]) -> None:
        dropped: set[int] = set()
        unit = _unit_of(path)
        where = index << 40
        count = 0
        for entry in future.result():
            number = entry[0]
            # The usual case first, as _first_time notes it: an article whose id is new.
            if len(entry) == 3 and entry[1] not in seen:
                seen[entry[1]] = (entry[2], where | number)
                count += 1
                continue
            try:
                if len(entry) == 2:
                    raise entry[1]
                if not _first_time(entry[1], entry[2], number, path, unit, self._report, seen, index, self._paths):
                    dropped.add(number)
                    continue
            except InputError as exc:
                if not self._skip_bad:
                    raise
                self._report.skipped.append(str(exc))
                dropped.add(number)
                continue
            count += 1
        self._count += count
        if dropped:
            self._dropped[run] = frozenset(dropped)

    def __iter__(self) -> Iterator[Article]:
        if not self._runs:
            return iter(self._memory)
        empty: frozenset[int] = frozenset()
        # Articles of the runs the workers wrote come without their texts when the caller reads
        # those from the places: decoding every text here would be work for nothing.
        merged = heapq.merge(*(read_run(p, self._dropped.get(p, empty), texts=self._texts or p not in self._read_there)
                               for p in self._runs), key=_time_order_first)
        return self._placed(merged)

    def _placed(self, merged: Iterator[tuple[Article, Place]]) -> Iterator[Article]:
        on_place = self._on_place
        for article, place in merged:
            if on_place is not None:
                on_place(article, place)
            yield article


def _workers_up(pool: Executor) -> bool:
    """Whether a pool's workers are up (a pool that does not say is taken to be)."""
    started = getattr(pool, "started", None)  # dedup.detector.WorkerPool's
    return started is None or bool(started.is_set())


RUN_ROWS = 50_000  # articles sorted in memory at a time; larger dumps are sorted in runs on disk
# Dumps of this much text or more are read in the workers when there are any (the 15k-article dev set,
# 53 MB, read 0.35 s slower that way; 100k articles, 405 MB, 1 s faster).
WORKER_READ_BYTES = 128 << 20
_ON_READ_ROWS = 1000
_BLOCKS_IN_FLIGHT = 3  # blocks (JSONL lines, table batches) handed to the workers and not yet checked

# What a worker says of each row of a block: (line or row, id, fingerprint) for an article,
# (line or row, error) for one that cannot be read.
_Checked = tuple[int, str, int] | tuple[int, InputError]


def large_dump(paths: list[Path]) -> bool:
    """Whether these files hold :data:`WORKER_READ_BYTES` of text or more: a dump the workers read
    (see :class:`Dump`), and which is matched with the compiled kernels from the start."""
    return _text_bytes(paths) >= WORKER_READ_BYTES


def _text_bytes(paths: list[Path]) -> int:
    """About how many bytes of text the files hold (compressed files and Parquet count 4 times
    their size on disk: news text compresses about that much)."""
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # a missing file is reported when it is read
            size = os.path.getsize(path)
            total += size * 4 if str(path).lower().endswith((".gz", ".zst", ".parquet")) else size
    return total


def _read_block(path: str, first_line: int, block: bytes | tuple[int, int], columns: Columns,
                run: str) -> list[_Checked]:
    """In a worker: parse a block of JSONL lines (given, or the bytes from ``block[0]`` to
    ``block[1]`` of the file), write its articles to the run file ``run`` in time order, and say
    what the reading process needs to check the ids and report errors.

    The run of a block read from the file holds no texts, only where each line is (see
    :class:`dedup._runs.Lines`): they are read from there again when the articles are sketched."""
    lines, breaks = None, None
    if isinstance(block, tuple):
        start, end = block
        with open(path, "rb") as fh:
            fh.seek(start)
            block = fh.read(end - start)
        if len(block) != end - start:
            raise InputError(path, first_line, "the file was cut short while it was read",
                             "Scan a dump once it is written in full")
        breaks = _line_breaks(block)
        starts = [0, *(b + 1 for b in breaks)]
        ends = [*breaks, len(block)]  # (a last line without a line break ends with the block)
        lines = Lines(path, columns.id, columns.text, first_line, [s + start for s in starts],
                      [e - s for s, e in zip(starts, ends, strict=True)])
    frame = _polars_frame(block, columns, breaks)  # (read once, whichever way the block then goes)
    if frame is not None and lines is not None:
        fast_run = _jsonl_block_run(frame, first_line, columns, run, lines)
        if fast_run is not None:
            return fast_run
    prints: dict[int, int] = {}  # the fingerprints of the articles read by polars, by line number
    # The texts of the articles read by polars: none (read from the file again), or left in UTF-8 for the run.
    encoded: dict[int, bytes] | None = None if lines is not None else {}
    fast = None if frame is None else _polars_rows(frame, path, first_line, columns, encoded, prints,
                                                   texts=lines is None)
    return _checked_run(_jsonl_block_checked(block, path, first_line, columns) if fast is None else fast, run,
                        encoded, lines, prints)


def _read_table_block(path: str, first: int, frame: pl.DataFrame, columns: Columns, unit: str,
                      run: str) -> list[_Checked]:
    """In a worker: the rows of a batch of a CSV or Parquet file (the first numbered ``first``)
    to articles, written to the run file ``run``; what :func:`_read_block` says."""
    return _checked_run(_frame_rows(frame, path, first, unit, columns), run)


def _checked_run(rows: Iterable[_Row], run: str, encoded: Mapping[int, bytes] | None = None,
                 lines: Lines | None = None, prints: Mapping[int, int] | None = None) -> list[_Checked]:
    """Write the articles among ``rows`` to the run file ``run`` (``encoded``, ``lines``: see
    :func:`dedup._runs.write_run`); what each row was, for the checks, with the fingerprint of
    each article (from ``prints`` by number, else from the article, which has its text then)."""
    checked: list[_Checked] = []
    numbered: list[tuple[int, Article]] = []
    articles_at: list[int] = []  # where the articles are among the checked rows
    for number, parsed in rows:
        if isinstance(parsed, InputError):
            checked.append((number, parsed))
        elif parsed is not None:
            articles_at.append(len(checked))
            checked.append((number, parsed.id, 0))
            numbered.append((number, parsed))
    write_run(Path(run), numbered, encoded, lines)
    prints = prints or {}
    missing = [a for n, a in numbered if n not in prints]
    computed = iter(_fingerprints(pl.DataFrame({f: [getattr(a, f) for a in missing] for f in _PRINTED},
                                               schema=dict.fromkeys(_PRINTED, pl.String))) if missing else [])
    for at, (number, article) in zip(articles_at, numbered, strict=True):
        given = prints.get(number)
        checked[at] = (number, article.id, next(computed) if given is None else given)
    return checked


# What tells apart two rows with one id when a dump is read by the workers: a hash of these
# fields (the content digest's), computed by polars from the parsed columns without making a
# Python string of each text. The same in every process of a scan (one polars version); a scan
# read in this process uses the content digest instead (_fingerprint): one scan never mixes them.
_PRINTED = ("text", "title", "url", "outlet", "published")


def _fingerprints(frame: pl.DataFrame) -> list[int]:
    """The fingerprint of each row of ``frame`` (with the :data:`_PRINTED` columns, null as empty)."""
    fields = pl.struct([pl.col(f).fill_null("") for f in _PRINTED])
    printed: list[int] = frame.select(fields.hash(0x5EED)).to_series().to_list()
    return printed


def _time_order_first(item: tuple[Article, Place]) -> tuple[bool, str, str]:
    return time_order_key(item[0])


def _fingerprint(a: Article) -> int:
    """What tells apart two rows with one id (the same in every process, unlike ``hash``)."""
    return _fingerprint_of(content_digest(a.text.encode("utf-8", "surrogatepass"), a.title, a.url, a.outlet,
                                          a.published))


def _fingerprint_of(digest: str) -> int:
    return int(digest[:16], 16)


def read_many(paths: list[Path], report: ReadReport, skip_bad: bool = False,
              columns: Columns | None = None) -> Iterator[Article]:
    """The articles of several dumps, in :func:`time_order_key` order (see :class:`Dump`)."""
    with Dump(paths, report, skip_bad, columns) as dump:
        yield from dump


def read_articles(path: str | Path, report: ReadReport, skip_bad: bool = False,
                  columns: Columns = _DEFAULT_COLUMNS, ordered: bool = False) -> Iterator[Article]:
    """Articles from a dump, by extension: JSONL/NDJSON (plain, .gz or .zst), CSV or Parquet,
    read a batch at a time.

    Bad rows raise :class:`InputError` naming the file and line (or row), or with ``skip_bad``
    are listed in ``report`` and skipped; ids repeated with identical content are dropped and
    counted, with other content they are bad rows. A compressed file that turns out corrupt
    is an error naming the line where reading stopped; with ``skip_bad`` the rows before it
    are kept and the rest is listed as skipped. With ``ordered`` the articles come in
    :func:`time_order_key` order (the order ``dedup scan`` processes them in).
    """
    if ordered:
        return read_many([Path(path)], report, skip_bad, columns)
    source = str(path)
    return _unique(_rows_of(source, columns, report, skip_bad), source, report, skip_bad, _unit_of(source))


def read_jsonl(path: str | Path, report: ReadReport, skip_bad: bool = False) -> Iterator[Article]:
    """Articles from a JSONL file: one object per line with ``id``, ``text`` and optional fields."""
    return read_articles(path, report, skip_bad)


def _unit_of(path: str) -> str:
    return "row" if path.lower().endswith(".parquet") else "line"


def _rows_of(path: str, columns: Columns, report: ReadReport, skip_bad: bool) -> Iterator[_Row]:
    name = path.lower()
    if name.endswith(_JSONL):
        return _jsonl_rows(path, columns, report, skip_bad)
    if name.endswith(".csv"):
        return _table_rows(path, "csv", columns)
    if name.endswith(".parquet"):
        return _table_rows(path, "parquet", columns)
    raise InputError(path, None, "unknown input format", f"Use one of {FORMATS}")


_Row = tuple[int, "Article | InputError | None"]


def _unique(rows: Iterator[_Row], path: str, report: ReadReport, skip_bad: bool, unit: str,
            seen: dict[str, tuple[int, int]] | None = None, file_index: int = 0,
            paths: list[Path] | None = None) -> Iterator[Article]:
    """Rows to articles: bad rows raised or listed, repeated ids dropped (same content) or refused.

    ``seen`` maps each id met so far (in this file or earlier ones) to its content fingerprint
    and where it was: ``file_index << 40 | line``.
    """
    seen = {} if seen is None else seen
    for number, parsed in rows:
        try:
            if isinstance(parsed, InputError):
                raise parsed
            if parsed is None:
                continue
            if not _first_time(parsed.id, _fingerprint(parsed), number, path, unit, report, seen, file_index, paths):
                continue
        except InputError as exc:
            if not skip_bad:
                raise
            report.skipped.append(str(exc))
            continue
        yield parsed


def _first_time(article_id: str, fingerprint: int, number: int, path: str, unit: str, report: ReadReport,
                seen: dict[str, tuple[int, int]], file_index: int, paths: list[Path] | None) -> bool:
    """Whether a row's id is met for the first time (noted in ``seen``); False for a repeat
    with the same content (counted), :class:`InputError` for a repeat with other content."""
    first = seen.get(article_id)
    if first is None:
        seen[article_id] = (fingerprint, file_index << 40 | number)
        return True
    if first[0] == fingerprint:
        report.repeated += 1
        return False
    where, line = first[1] >> 40, first[1] & ((1 << 40) - 1)
    if where == file_index:
        raise InputError(
            path, number, f"id {article_id!r} was already used on {unit} {line} with different content",
            "Ids must be unique: give one of them another id, or pass --skip-bad to keep the first",
            unit=unit,
        )
    other = paths[where] if paths is not None else "an earlier file"
    raise InputError(path, number, f"id {article_id!r} is also in {other} with other content",
                     "Ids must be unique across the files: pass --skip-bad to keep the first", unit=unit)


_BLOCK_BYTES = 32 << 20
_FIRST_BLOCK_BYTES = 4 << 20


def _jsonl_rows(path: str, columns: Columns, report: ReadReport | None = None,
                skip_bad: bool = False) -> Iterator[_Row]:
    """The rows of a JSONL file, read in blocks of whole lines.

    A clean block is parsed by polars (several times faster); a block with anything unusual
    (blank lines, a parse error, unexpected types) is read line by line, which names the line
    at fault.
    """
    for first, block in _jsonl_blocks(path, report, skip_bad):
        fast = _jsonl_block_polars(block, path, first, columns)
        yield from _jsonl_block_checked(block, path, first, columns) if fast is None else fast


def _jsonl_block_checked(data: bytes, path: str, first_line: int, columns: Columns) -> Iterator[_Row]:
    """The rows of a block of JSONL lines parsed one by one, naming the line of each error."""
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()  # what follows the last newline
    for number, raw in enumerate(lines, first_line):
        try:
            yield number, _parse_line(raw, path, number, columns)
        except InputError as exc:
            yield number, exc


def _jsonl_blocks(path: str, report: ReadReport | None, skip_bad: bool) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, whole lines) of a JSONL file, about ``_BLOCK_BYTES`` at a time.

    The first blocks are smaller (4 MB, doubling up to that size), so that the first articles
    reach whoever waits for them (the workers, see :class:`Dump`'s ``on_read``) without waiting
    for a whole 32 MB block to be parsed.
    """
    line = 1
    tail = b""
    size = min(_FIRST_BLOCK_BYTES, _BLOCK_BYTES)
    with _open_binary(path) as fh:
        while True:
            try:
                chunk = fh.read(size)
                size = min(size * 2, _BLOCK_BYTES)
            except _CORRUPT as exc:
                error = InputError(path, line, f"the compressed file is corrupt ({exc}); reading stopped here",
                                   "Check the download, or decompress what can be read and pass that file")
                if report is None or not skip_bad:
                    raise error from None
                report.skipped.append(str(error))
                return
            if not chunk:
                break
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                tail = data
                continue
            block, tail = data[:cut], data[cut:]
            yield line, block
            line += len(_line_breaks(block))
    if tail:
        yield line, tail


def _jsonl_spans(path: str) -> Iterator[tuple[int, tuple[int, int]]]:
    """:func:`_jsonl_blocks` of an uncompressed file as (number of the first line, (start, end)
    byte offsets): only where to cut is worked out here, the blocks are not copied or sent.

    Read a chunk at a time into one buffer (a memory map would count the whole file in this
    process's memory; a new buffer each time costs more in page faults than the reading)."""
    line, start, read, step = 1, 0, 0, min(_FIRST_BLOCK_BYTES, _BLOCK_BYTES)
    buffer = bytearray(_BLOCK_BYTES)
    with open(path, "rb", buffering=0) as fh:
        while size := fh.readinto(memoryview(buffer)[:step]):
            read += size
            step = min(step * 2, _BLOCK_BYTES)
            cut = buffer.rfind(b"\n", 0, size) + 1  # what came before this chunk since `start` has no line end
            if cut == 0:
                continue
            end = read - size + cut
            yield line, (start, end)
            line += len(_line_breaks(buffer, cut))
            start = end
    if start < read:
        yield line, (start, read)


# An escaped backslash, or an escaped UTF-16 surrogate (a half of a pair); and a whole escaped
# pair (high then low). Searched for in two steps, not with one pattern of alternatives and a
# lookbehind: such a pattern has no literal start that the regex engine can skip to, and took
# half a second on a 32 MB block (most of a worker's reading time) where this takes 10 ms.
_BACKSLASH_OR_SURROGATE = re.compile(rb"\\\\|\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _lone_surrogate(data: bytes) -> bool:
    """Whether ``data`` escapes half of a UTF-16 surrogate pair alone (a high one with no low
    one after it, or a low one with no high one before it): polars reads it as U+0000, json
    keeps it as a string that cannot be written. An escaped backslash is passed over whole, so
    the text ``\\ud800`` (a backslash, then letters) neither counts nor hides an escape after it."""
    start = 0
    while (found := _BACKSLASH_OR_SURROGATE.search(data, start)) is not None:
        if found.end() - found.start() == 2:  # an escaped backslash
            start = found.end()
            continue
        pair = _SURROGATE_PAIR.match(data, found.start())
        if pair is None:
            return True
        start = pair.end()
    return False


def _jsonl_block_polars(data: bytes, path: str, first_line: int, columns: Columns,
                        encoded: dict[int, bytes] | None = None, prints: dict[int, int] | None = None, *,
                        texts: bool = True) -> list[_Row] | None:
    """The rows of a clean block of JSONL lines read by polars, or None for the checking way.

    With ``encoded`` the articles come without their texts, which go there in UTF-8 by line
    number (for a run file, which keeps them so: decoding them here would be work for nothing);
    without ``texts``, they come without them, and the texts go nowhere. ``prints`` gets the
    fingerprint of each article (:func:`_fingerprints`) by line number."""
    frame = _polars_frame(data, columns)
    return None if frame is None else _polars_rows(frame, path, first_line, columns, encoded, prints, texts=texts)


def _polars_rows(frame: pl.DataFrame, path: str, first_line: int, columns: Columns,
                 encoded: dict[int, bytes] | None = None, prints: dict[int, int] | None = None, *,
                 texts: bool = True) -> list[_Row]:
    """:func:`_jsonl_block_polars` of a block that :func:`_polars_frame` read."""
    lines = frame.height
    wanted = [getattr(columns, f) for f in _FIELDS]
    names = {getattr(columns, f): f for f in _FIELDS}
    if prints is not None:
        printed = _fingerprints(frame.select([pl.col(getattr(columns, f)).alias(f) for f in _PRINTED]))
        prints.update(zip(range(first_line, first_line + lines), printed, strict=True))
    empty = [None] * lines
    values = {names[c]: (frame[c].cast(pl.Binary) if encoded is not None and names[c] == "text" else frame[c]).to_list()
              for c in wanted if texts or names[c] != "text"}
    del frame
    agency = values.pop("outlet_is_agency", empty)
    ids, texts_read = values.pop("id"), values.pop("text", empty)
    if encoded is not None:
        encoded.update((first_line + i, text) for i, text in enumerate(texts_read) if text)
        texts_read = empty
    optional = [values.get(k, empty) for k in _OPTIONAL]
    rows: list[_Row] = []
    # The schema was given above: every value is a string (or null), so Articles are built
    # directly; a row without an id is an error naming its line.
    for i, (article_id, text) in enumerate(zip(ids, texts_read, strict=True)):
        number = first_line + i
        if not article_id:
            rows.append((number, InputError(path, number, "missing 'id'", "Every row needs an 'id' and a 'text'")))
            continue
        title, url, outlet, published, byline, fetched_at = (o[i] or "" for o in optional)
        rows.append((number, _new_article(id=article_id, text=text or "", title=title, url=url, outlet=outlet,
                                          published=published, byline=byline, fetched_at=fetched_at,
                                          outlet_is_agency=bool(agency[i]))))
    return rows


_new_article = positional(Article)  # for rows whose values were checked (see _jsonl_block_polars)


def _line_breaks(data: bytes | bytearray, end: int | None = None) -> list[int]:
    """Where the line feeds of ``data`` (up to ``end``) are: found one by one with ``find``
    (memchr), 5x faster on a 32 MB block than numpy's compare or ``count``, which only counts."""
    breaks: list[int] = []
    end = len(data) if end is None else end
    find = data.find
    at = find(b"\n", 0, end)
    while at >= 0:
        breaks.append(at)
        at = find(b"\n", at + 1, end)
    return breaks


def _polars_frame(data: bytes, columns: Columns, breaks: list[int] | None = None) -> pl.DataFrame | None:
    """A clean block of JSONL lines read by polars (the input's column names), one row a line,
    or None when the checking reader must read it (which says what is wrong and where).
    ``breaks`` are where the line feeds of ``data`` are (:func:`_line_breaks`), when known."""
    if not data or data[:1].isspace():
        return None
    if breaks is None:
        breaks = _line_breaks(data)
    wanted = [getattr(columns, f) for f in _FIELDS]
    if len(set(wanted)) < len(wanted):  # one column for two fields: the checking reader
        return None
    # Read as the types they must have, only these columns (and nothing inferred: that took two
    # thirds of the time). polars writes a number, a boolean, a list or an object given for a
    # string as its JSON text: a block where a value reads so is searched for such values
    # (_non_string_value), and goes the checking way when it has one. A value that is not a
    # boolean where one must be is an error here.
    schema = {name: pl.Boolean if name == columns.outlet_is_agency else pl.String for name in wanted}
    try:
        frame = pl.read_ndjson(io.BytesIO(data), schema=schema)
    except Exception:  # polars raises several types; the slow path says what is wrong and where
        return None
    # polars passes over blank lines (and lines of white space): their numbers would shift.
    if frame.height != len(breaks) + (0 if data.endswith(b"\n") else 1):
        return None
    texts = [name for name in wanted if name != columns.outlet_is_agency]
    looks, nul = frame.select(pl.any_horizontal(pl.col(texts).str.contains(_AS_JSON_TEXT).any()).alias("looks"),
                              pl.any_horizontal(pl.col(texts).str.contains("\x00", literal=True).any()).alias("nul")
                              ).row(0)
    if looks and _non_string_value(data, columns):
        return None
    # polars reads an escaped high surrogate with no low one after it as U+0000 (a lone low one
    # fails above): only a block with U+0000 in a column read is searched for one (searching
    # every block took a third of the checks' time).
    return None if nul and _lone_surrogate(data) else frame


# What polars writes for a number (a decimal, or with an exponent), a boolean, a list or an
# object that it reads into a string column: its JSON text, which reads like this (a list or an
# object opens as JSON's do, and few strings do: a title in braces does not). Searching the
# block's bytes for such values took 29 ms a 32 MB block, this 4 ms.
_AS_JSON_TEXT = r'(?s)^(?:-?\d[\d.eE+\-]*|true|false|\[\s*(?:\]|[-\d"\[{tfn].*\])|\{\s*(?:\}|".*\}))$'


def _jsonl_block_run(frame: pl.DataFrame, first_line: int, columns: Columns, run: str, lines: Lines
                     ) -> list[_Checked] | None:
    """:func:`_read_block` of a clean block (``frame``, read by :func:`_polars_frame` with the
    input's column names) whose run holds where the lines are, by columns: polars
    fingerprints and sorts the block, and the run's rows are zipped from its columns (no
    Article made for each, and no text decoded). None when a row has no id: the block then goes
    the row-by-row way, which names its line."""
    frame = frame.rename({getattr(columns, f): f for f in _FIELDS if getattr(columns, f) != f})
    ids = frame["id"]
    if ids.null_count() or (ids == "").any():
        return None
    printed = _fingerprints(frame.select(_PRINTED))
    # time_order_key's order, stable as list.sort: dated first, by time, then id (polars compares
    # strings by their UTF-8 bytes, which is the order of their code points, as Python does).
    published = pl.col("published").fill_null("")
    ordered = frame.drop("text").with_row_index("at").sort([published == "", published, "id"], maintain_order=True)
    at = ordered["at"].to_list()
    rows = list(zip([first_line + i for i in at], ordered["id"].to_list(),
                    *(ordered[f].fill_null("").to_list() for f in _OPTIONAL),
                    ordered["outlet_is_agency"].fill_null(False).to_list(), itertools.repeat(None)))
    write_line_run(Path(run), rows, lines, at)
    return [(first_line + i, article_id, fingerprint)
            for i, (article_id, fingerprint) in enumerate(zip(ids.to_list(), printed, strict=True))]


def _non_string_value(data: bytes, columns: Columns) -> bool:
    """Whether a text field holds something other than a string or null (or the id something
    other than a string, an integer or null) anywhere in ``data``.

    polars turns such values into strings without a word (5 becomes "5", [1, 2] "[1, 2]"); the
    line-by-line reader refuses them and names the line, so their files go that way. A key
    inside a string value has escaped quotes and is not matched; a nested key may be, which
    only costs the fast path.
    """
    def names(fields: tuple[str, ...]) -> bytes:
        return b"|".join(re.escape(json.dumps(getattr(columns, f), ensure_ascii=False).encode()) for f in fields)

    texts = tuple(f for f in _FIELDS if f not in ("id", "outlet_is_agency"))
    # The id may be an integer (polars keeps its digits); a fraction (5.5, 1e3) goes to the
    # line-by-line reader, which writes it as Python does (1000.0, not polars's 1000).
    pattern = (rb"(?:" + names(texts) + rb')\s*:\s*(?!null\b)[^"\s]|' + names(("id",))
               + rb'\s*:\s*(?:(?!null\b)[^"\s\d-]|-?\d+[.eE])')
    return re.search(pattern, data) is not None


def _table_rows(path: str, kind: str, columns: Columns) -> Iterator[_Row]:
    unit = "line" if kind == "csv" else "row"
    for number, frame in _table_blocks(path, kind, columns):
        yield from _frame_rows(frame, path, number, unit, columns)


def _frame_rows(frame: pl.DataFrame, path: str, first: int, unit: str, columns: Columns) -> Iterator[_Row]:
    """The rows of a batch (see :func:`_table_blocks`), each numbered by its line or row."""
    spans: Iterable[int]
    if _LINES in frame.columns:  # CSV: a row spans as many lines as its quoted fields need
        spans = frame.get_column(_LINES).to_list()
        frame = frame.drop(_LINES)
    else:
        spans = itertools.repeat(1)
    number = first
    for obj, span in zip(frame.iter_rows(named=True), spans, strict=False):
        try:
            yield number, _article(columns.rename(obj), path, number, unit)
        except InputError as exc:
            yield number, exc
        number += span


def _table_blocks(path: str, kind: str, columns: Columns) -> Iterator[tuple[int, pl.DataFrame]]:
    """(number of the first row, the next batch of about :data:`_TABLE_BATCH` rows) of a CSV or Parquet file,
    its columns checked and cast to text first."""
    try:
        lazy = pl.scan_csv(path, infer_schema=False) if kind == "csv" else pl.scan_parquet(path)
        schema = lazy.collect_schema()
    except FileNotFoundError:
        raise
    except Exception as exc:  # polars raises several types; the message says which
        raise InputError(path, None, f"cannot be read as {kind.upper()}: {exc}") from None
    names = set(schema.names())
    for required, option in (("id", "--id-col"), ("text", "--text-col")):
        column = getattr(columns, required)
        if column not in names:
            raise InputError(path, None, f"no column {column!r} for the article {required} (columns: "
                                         f"{', '.join(schema.names())})", f"Name the column with {option}")
    for name in _FIELDS:
        column = getattr(columns, name)
        if column in names:
            dtype = schema[column]
            if name == "outlet_is_agency":
                if dtype != pl.Boolean and dtype != pl.String:
                    raise InputError(path, None, f"column {column!r} has type {dtype}, expected Boolean",
                                     "Store true/false in it")
            elif not (dtype == pl.String or dtype.is_numeric() or dtype.is_temporal()):
                raise InputError(path, None, f"column {column!r} ({name}) has type {dtype}, expected text",
                                 "Cast it to a string column")
    wanted = [getattr(columns, f) for f in _FIELDS if getattr(columns, f) in names]
    number = 2 if kind == "csv" else 1  # a CSV's first data row is on line 2
    unit = "line" if kind == "csv" else "row"
    as_text = [pl.col(c).cast(pl.String) for c in wanted if c != columns.outlet_is_agency]
    selected = [pl.col(c) for c in wanted]
    if kind == "csv":
        # The lines each row takes: one, and one more for each line break inside its quoted
        # fields (paragraphs of a text), in any column; so that a row is named by its line.
        breaks = [pl.col(c).str.count_matches("\n", literal=True).fill_null(0) for c in schema.names()]
        selected.append((pl.sum_horizontal(breaks) + 1).cast(pl.Int64).alias(_LINES))
    batches = lazy.select(selected).with_columns(as_text).collect_batches(chunk_size=_TABLE_BATCH)
    while True:
        try:
            frame = next(batches)
        except StopIteration:
            return
        except Exception as exc:  # e.g. a malformed CSV row further down
            raise InputError(path, None, f"cannot be read as {kind.upper()} after {unit} {number - 1}: {exc}",
                             unit=unit) from None
        yield number, frame
        number += int(frame.get_column(_LINES).sum()) if kind == "csv" else frame.height


_LINES = "\x00lines"  # the column of a CSV batch that says how many lines each row takes

# Rows a batch of a CSV or Parquet file (a worker task: about the size of a JSONL block). Both
# ways of reading use it, so that an error in a batch names the same line either way.
_TABLE_BATCH = 8_000


def _parse_line(raw: bytes, path: str, number: int, columns: Columns = _DEFAULT_COLUMNS) -> Article | None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, number, f"not valid UTF-8 (byte {exc.start})",
                         "Re-encode the file as UTF-8") from None
    if not line.strip():
        return None
    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        # (json's "Unterminated string starting at" names the place itself)
        raise InputError(path, number, f"malformed JSON: {exc.msg.removesuffix(' at')} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise InputError(path, number, f"expected a JSON object, got {type(obj).__name__}")
    obj = columns.rename(obj)
    if _lone_surrogate(raw):
        _refuse_surrogates(obj, path, number)
    return _article(obj, path, number, "line")


def _refuse_surrogates(obj: dict[str, Any], path: str, number: int) -> None:
    """JSON can escape half of a UTF-16 pair alone (``"\\ud800"``): that is no character, and no
    output (UTF-8 JSONL, CSV, Parquet) or state can hold it, so the line is refused here rather
    than the scan failing when it writes."""
    for field_name in _FIELDS:
        value = obj.get(field_name)
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InputError(path, number, f"'{field_name}' holds a lone surrogate "
                                 f"(\\u{ord(value[exc.start]):04x}), which is not a character",
                                 "Write the character it stands for, or leave the line out (--skip-bad)") from None


def _article(obj: dict[str, Any], path: str, number: int, unit: str) -> Article:
    if obj.get("id") in (None, ""):
        raise InputError(path, number, "missing 'id'", "Every row needs an 'id' and a 'text'", unit=unit)
    text = obj.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(path, number, f"'text' must be a string, got {type(text).__name__}", unit=unit)
    fields = {k: obj.get(k) for k in _OPTIONAL}
    for k, v in fields.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, str | int | float)):
            raise InputError(path, number, f"'{k}' must be a string, got {type(v).__name__}", unit=unit)
    agency = obj.get("outlet_is_agency", False)
    if isinstance(agency, str):
        agency = agency.strip().lower() in ("1", "true", "yes")
    return Article(
        id=str(obj["id"]),
        text=text,
        outlet_is_agency=bool(agency),
        **{k: ("" if v is None else str(v)) for k, v in fields.items()},
    )


def write_table(rows: Iterable[dict[str, Any]], path: str | Path, batch_rows: int = 10_000,
                schema: Mapping[str, pl.DataType] | None = None) -> int:
    """Write rows as JSONL, CSV or Parquet (by extension), atomically: temp name, then rename.

    ``rows`` may be a lazy iterable: it is written a batch at a time, never held whole (CSV and
    Parquet go through temporary Arrow files beside the target, streamed into one file by
    polars). ``schema`` gives the column types (every batch gets the same ones, and nothing is
    inferred); rows are then read by those names. Returns the number of rows written.
    """
    target = _output_path(path)
    if target.suffix.lower() in (".jsonl", ".ndjson") and schema is None:
        with _atomic(target) as (tmp, _):
            written = 0
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False))
                    fh.write("\n")
                    written += 1
        return written
    stream = iter(rows)
    # polars writes typed batches several times faster than json.dumps row by row.
    frames = (pl.DataFrame(batch, infer_schema_length=None) if schema is None else pl.DataFrame(batch, schema=schema)
              for batch in iter(lambda: list(itertools.islice(stream, batch_rows)), []))
    return _write_frames(frames, target, schema)


def write_columns(batches: Iterable[Mapping[str, list[Any]]], path: str | Path,
                  schema: Mapping[str, pl.DataType]) -> int:
    """:func:`write_table` of a table given a batch of rows at a time as columns (a list of
    values by column name, the names and types of ``schema``): for a table built a column at a
    time, without a dict a row. Returns the number of rows written."""
    return _write_frames((pl.DataFrame(batch, schema=schema) for batch in batches), _output_path(path), schema)


def _write_frames(frames: Iterable[pl.DataFrame], target: Path, schema: Mapping[str, pl.DataType] | None) -> int:
    suffix = target.suffix.lower()
    with _atomic(target) as (tmp, parts):
        if suffix in (".jsonl", ".ndjson"):
            with open(tmp, "wb") as out:
                return _write_each(frames, lambda frame: frame.write_ndjson(out))
        parts.mkdir(exist_ok=True)
        files: list[Path] = []

        def part(frame: pl.DataFrame) -> None:
            files.append(parts / f"{len(files):06d}.arrow")
            frame.write_ipc(files[-1])

        written = _write_each(frames, part)
        if not files:
            empty = pl.DataFrame(schema=schema)
            empty.write_csv(tmp) if suffix == ".csv" else empty.write_parquet(tmp)
        else:
            lazy = pl.concat([pl.scan_ipc(f) for f in files], how="vertical_relaxed")
            if suffix == ".csv":
                lists = [c for c, t in lazy.collect_schema().items() if isinstance(t, pl.List)]
                lazy.with_columns([pl.col(c).list.join(";") for c in lists]).sink_csv(tmp)
            else:
                # polars' default row group (hundreds of thousands of rows) is held whole in
                # memory before it is written: for the nested stories table that was 400 MB at 1M.
                lazy.sink_parquet(tmp, row_group_size=_ROW_GROUP_ROWS)
    return written


def _write_each(frames: Iterable[pl.DataFrame], write: Callable[[pl.DataFrame], None]) -> int:
    """``write`` each frame, one at a time and in order, in a thread while the next frame is made
    (polars writes without Python's lock, and making a frame is Python's work: writing the items
    of a 100k-article scan took 0.31-0.33 s instead of 0.47-0.60 s); the number of rows."""
    written = 0
    with ThreadPoolExecutor(1, thread_name_prefix="dedup-write") as writer:
        writing: Future[None] | None = None
        for frame in frames:
            if writing is not None:
                writing.result()
            writing = writer.submit(write, frame)
            written += frame.height
        if writing is not None:
            writing.result()
    return written


def _output_path(path: str | Path) -> Path:
    target = Path(path)
    if target.suffix.lower() not in (".jsonl", ".ndjson", ".csv", ".parquet"):
        raise InputError(str(target), None, f"unknown output format {target.suffix.lower()!r}",
                         "Use a name ending in .jsonl, .csv or .parquet")
    return target


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[tuple[Path, Path]]:
    """(a temporary file, a temporary folder) beside ``target``: the file becomes ``target``
    when the block completes; both are gone after it, completed or not."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    parts = target.with_name(f".{target.name}.{os.getpid()}.parts")
    try:
        yield tmp, parts
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
        if parts.exists():
            shutil.rmtree(parts)


ITEM_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(), "cluster": pl.String(), "canonical_id": pl.String(), "is_canonical": pl.Boolean(),
    "action": pl.String(), "best_match_id": pl.String(), "similarity": pl.Float64(), "containment": pl.Float64(),
    "outlet": pl.String(), "credit": pl.String(), "credit_where": pl.String(), "credit_via": pl.String(),
    "embedded_in": pl.String(),
}
"""The items table of ``dedup scan``: one row per article."""

_PROVENANCE = pl.Struct({
    "id": pl.String(), "outlet": pl.String(), "url": pl.String(), "title": pl.String(), "published": pl.String(),
    "first_seen": pl.String(), "credit": pl.String(), "credit_where": pl.String(), "credit_via": pl.String(),
    "is_canonical": pl.Boolean(), "similarity": pl.Float64(), "containment": pl.Float64(),
    "flags": pl.List(pl.String()), "embedded_in": pl.String(),
})
STORY_SCHEMA: dict[str, pl.DataType] = {
    "story": pl.String(), "canonical_id": pl.String(), "canonical_reason": pl.String(), "size": pl.Int64(),
    "outlets": pl.List(pl.String()), "first_published": pl.String(), "last_published": pl.String(),
    "uncredited": pl.Int64(), "provenance": pl.List(_PROVENANCE),
}
"""The stories table of ``dedup scan --clusters`` (:func:`story_row`): one row per story."""
_ROW_GROUP_ROWS = 10_000
STORY_BATCH = 1_000  # story rows are nested and large: fewer at a time keeps memory flat


def story_row(story: Story) -> dict[str, Any]:
    """A story as one output row, provenance nested."""
    published = [p.published for p in story.provenance if p.published]
    return {
        "story": story.story_id,
        "canonical_id": story.canonical_id,
        "canonical_reason": story.canonical_reason,
        "size": story.size,
        "outlets": list(story.outlets),
        "first_published": min(published) if published else None,
        "last_published": max(published) if published else None,
        "uncredited": sum(1 for p in story.provenance if "uncredited" in p.flags),
        "provenance": [
            {
                "id": p.article_id, "outlet": p.outlet, "url": p.url, "title": p.title,
                "published": p.published, "first_seen": p.fetched_at, "credit": p.credit,
                "credit_where": p.credit_where, "credit_via": p.credit_via, "is_canonical": p.is_canonical,
                "similarity": p.similarity, "containment": p.containment, "flags": list(p.flags),
                "embedded_in": p.embedded_in,
            }
            for p in story.provenance
        ],
    }
