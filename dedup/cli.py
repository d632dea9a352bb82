"""The command line: thin wrappers that parse arguments, make one library call, print results."""

from __future__ import annotations

import atexit
import contextlib
import gc
import itertools
import logging
import operator
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dedup._errors import DedupError
from dedup.detector import (
    Detector,
    DetectorConfig,
    SketchAhead,
    default_workers,
    keep_freed_memory,
    warm_kernels,
    worker_pool,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="arabic-news-dedup")
def main() -> None:
    """Find reposts of the same news story across Arabic news outlets.

    Articles are normalized, shingled into word 3-grams, signed with MinHash and matched with
    LSH; copies of one story form a cluster with a canonical copy and a provenance list.
    """


@main.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Items table, one row per article (.jsonl, .csv or .parquet): id, cluster, canonical_id, "
                   "is_canonical, action, best_match_id, similarity, containment, outlet, credit, credit_where, "
                   "credit_via, embedded_in (articles appended to a page are rows of their own, id PAGE#embedded-N).")
@click.option("--clusters", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a stories table with canonical copy and provenance (.jsonl or .parquet).")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path),
              help="Match against (and add to) the state in this folder, e.g. the daemon's state/. "
                   "Without it the scan runs in memory.")
@click.option("--match-only", is_flag=True,
              help="With --state: find each article's nearest story in the state without adding anything "
                   "(action 'matched' or 'unmatched').")
@click.option("--skip-bad", is_flag=True, help="Skip rows that cannot be read and list them, instead of stopping.")
@click.option("-j", "--workers", type=click.IntRange(min=1), default=default_workers(), show_default="all cores",
              help="Processes for cleaning, shingling and signing. The clusters do not depend on it.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Articles per worker task. The clusters do not depend on it.")
@click.option("--id-col", default="id", show_default=True, help="Input column with the article id.")
@click.option("--text-col", default="text", show_default=True, help="Input column with the body text.")
@click.option("--title-col", default="title", show_default=True, help="Input column with the headline.")
@click.option("--url-col", default="url", show_default=True, help="Input column with the url.")
@click.option("--outlet-col", default="outlet", show_default=True, help="Input column with the outlet name.")
@click.option("--published-col", default="published", show_default=True,
              help="Input column with the publication time (ISO 8601).")
@click.option("--byline-col", default="byline", show_default=True, help="Input column with the byline.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def scan(inputs: tuple[str, ...], output: Path, clusters: Path | None, state: Path | None, match_only: bool,
         skip_bad: bool,
         workers: int, batch_size: int, id_col: str, text_col: str, title_col: str, url_col: str,
         outlet_col: str, published_col: str, byline_col: str, quiet: bool) -> None:
    """Cluster the articles of a dump into stories.

    INPUT is one or more files or glob patterns ('dumps/*.jsonl.zst'): JSONL/NDJSON (plain,
    .gz or .zst), CSV or Parquet, told apart by extension. Rows have an id and a text, and
    optionally title, url, outlet, published, byline, fetched_at, outlet_is_agency (rename
    columns with the --*-col options). They are processed in publication-time order (then id),
    so the result does not depend on the order of the rows or of the files. A progress line is
    shown on stderr when it is a terminal; the outputs are written under a temporary name and
    renamed when complete, so an interrupted run (Ctrl-C) leaves no partial file.
    """
    if match_only and state is None:
        raise click.UsageError("--match-only needs --state DIR (the state to match against)")
    started = time.perf_counter()
    sizes: Counter[str] = Counter()
    copies = 0

    def counted(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        nonlocal copies
        for row in rows:
            sizes[row["cluster"]] += 1
            copies += not row["is_canonical"]
            yield row

    def counted_columns(batches: Iterator[dict[str, list[Any]]]) -> Iterator[dict[str, list[Any]]]:
        nonlocal copies
        for batch in batches:
            sizes.update(batch["cluster"])
            copies += batch["is_canonical"].count(False)
            yield batch

    # SIGTERM (a job scheduler stopping the run) unwinds like Ctrl-C: no partial output, no
    # temporary files left behind.
    # The command ends its process once the scan is written (_exit_now): the cycle collector is
    # not turned on again then, which would first run a full collection of everything still
    # alive (0.19 s at 100k articles, and it grows with them) for nothing.
    with _signals_unwind(), _no_cycle_collection(restore=not _EXIT_WHEN_DONE):
        # The workers start (and import the engine) while this process imports the readers and
        # reads the dump.
        keep_freed_memory()  # (this process makes and drops large buffers too: see there)
        pool = worker_pool(workers) if workers > 1 and not match_only else None
        # Without a state, the detector starts empty and the dump's ids are unique: the workers
        # need not compute the digests that only a repeated id is compared by (see SketchAhead).
        ahead = SketchAhead(pool, DetectorConfig().sketch, digests=bool(state)) if pool is not None else None
        try:
            # Imported here, not at the top: spawned workers import this module again, and need no
            # polars.
            from dedup.dump import (
                ITEM_SCHEMA,
                STORY_BATCH,
                STORY_SCHEMA,
                Columns,
                Dump,
                ReadReport,
                expand_inputs,
                large_dump,
                story_row,
                write_columns,
                write_table,
            )

            report = ReadReport()
            columns = Columns(id=id_col, text=text_col, title=title_col, url=url_col, outlet=outlet_col,
                              published=published_col, byline=byline_col)
            paths = expand_inputs(list(inputs))
            if not match_only and large_dump(paths):
                # A dump this large is matched with the compiled kernels (Detector.compile): they
                # are loaded beside the reading, which leaves this process waiting for the workers
                # (0.3-0.6 s of 2 s at 100k articles), not before the first batches.
                threading.Thread(target=warm_kernels, daemon=True, name="dedup-load-kernels").start()
            # The dump is read (and sorted on disk when large) first; the articles then stream through.
            # The workers read the files of a large dump (128 MB of text or more), or else sketch
            # the articles as they are read (the order does not matter to them); the detector
            # then adds them in time order, and the workers sketch the rest reading them from
            # the dump's sorted runs (the texts are not sent to them again).
            # Without a stories table nothing reads the articles' display fields (the items table
            # has none): a detector in memory then keeps none (0.5 s of this process's 11 s at 100k).
            with Dump(paths, report, skip_bad=skip_bad, columns=columns,
                      on_read=ahead.submit if ahead is not None else None, pool=pool,
                      on_place=ahead.place if ahead is not None else None, texts=bool(state) or match_only) as dump, \
                    Detector.open(state) if state else Detector.in_memory(
                        keep_texts=False, keep_details=clusters is not None) as detector:
                with _progress(len(dump), quiet) as progress:
                    if match_only:
                        write_table(counted(_matched_rows(detector, dump, progress)), output)
                    else:
                        ids: set[str] = set()

                        def noting() -> Iterator[Any]:
                            for article in dump:
                                ids.add(article.id)
                                yield article

                        if len(dump) + len(detector) >= detector.COMPILE_FROM:
                            detector.compile()
                        first_new = len(detector)
                        detector.add_all(noting(), workers=workers, chunk_size=batch_size, pool=pool, progress=progress,
                                         ahead=ahead)
                        write_columns(counted_columns(_item_columns(detector, ids, first_new)), output, ITEM_SCHEMA)
                if clusters:
                    write_table((story_row(detector.story(s)) for s in sorted(sizes)), clusters,
                                batch_rows=STORY_BATCH, schema=STORY_SCHEMA)
        except FileNotFoundError as exc:
            raise click.ClickException(f"{exc.filename}: no such file") from None
        except DedupError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            if ahead is not None:
                ahead.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    for line in report.skipped:
        click.echo(f"skipped: {line}", err=True)
    if not quiet:
        click.echo(
            f"{sum(sizes.values())} items, {len(sizes)} stories, {copies} copies, "
            f"{sum(1 for s in sizes.values() if s > 1)} stories with copies, "
            f"largest {max(sizes.values(), default=0)}; skipped {len(report.skipped)}, "
            f"repeated ids dropped {report.repeated}; {time.perf_counter() - started:.1f}s"
        )
        largest = [(story, n) for story, n in sizes.most_common(3) if n > 1]
        if largest:
            click.echo("largest stories: " + ", ".join(f"{story} ({n})" for story, n in largest))
    if _EXIT_WHEN_DONE:
        _exit_now()


@contextlib.contextmanager
def _no_cycle_collection(restore: bool = True) -> Iterator[None]:
    """Python's cycle collector off while the block lasts (on again after, if it was, unless not
    ``restore``).

    A collection of the young objects looks through every object made since the last one, and
    a scan keeps what it makes (rows, story links) until it ends: even with rare collections
    (:data:`dedup.detector.RARE_COLLECTIONS`), collecting took 0.46 s of the reading process's
    10 s at 100k articles. A scan makes next to no reference cycles (742 unreachable objects
    at 100k articles), so not collecting costs next to no memory.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if restore and enabled:
            gc.enable()


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) and SIGINT KeyboardInterrupt here (so cleanup runs), as
    long as the block lasts.

    A signal that lands while numba compiles a kernel or a kernel calls back into Python is
    sent again 50 ms later instead: raised there, the exception would be swallowed or turned
    into another error by the compiled code, and the run would not unwind cleanly.
    """
    def stop(signum: int, frame: FrameType | None) -> None:
        if _inside_compiler(frame):
            timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
            timer.daemon = True
            timer.start()
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    try:
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _inside_compiler(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a caller of it is numba's or llvmlite's code."""
    roots = tuple(os.path.dirname(module.__file__) + os.sep for name in ("numba", "llvmlite")
                  if (module := sys.modules.get(name)) is not None and module.__file__)
    while roots and frame is not None:
        if frame.f_code.co_filename.startswith(roots):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal (and not --quiet)."""
    if quiet or not sys.stderr.isatty() or total < 1000:
        yield None
        return
    with click.progressbar(length=total, label="articles", file=sys.stderr, show_pos=True,
                           show_percent=True, show_eta=True) as bar:
        yield bar.update


def _matched_rows(detector: Detector, articles: Iterable[Any],
                  progress: Callable[[int], None] | None) -> Iterator[dict[str, Any]]:
    """Each article's nearest story in the state, nothing added."""
    for article in articles:
        found = detector.query(article.text, limit=1)
        best = found[0] if found else None
        yield {
            "id": article.id,
            "cluster": best.story_id if best else article.id,
            "canonical_id": best.canonical_id if best else article.id,
            "is_canonical": best is None,
            "action": "matched" if best else "unmatched",
            "best_match_id": best.best_match_id if best else None,
            "similarity": round(best.similarity, 4) if best else 0.0,
            "containment": round(best.containment, 4) if best else 0.0,
            "outlet": article.outlet,
        }
        if progress is not None:
            progress(1)


_ITEM_FIELDS = ("id", "action", "best_match_id", "similarity", "containment", "outlet", "credit", "credit_where",
                "credit_via", "embedded_in")


def _item_columns(detector: Detector, ids: set[str], first_new: int, batch_rows: int = 10_000
                  ) -> Iterator[dict[str, list[Any]]]:
    """The items table (see ``ITEM_SCHEMA``) a batch of rows at a time, as columns: one row per
    article of the dump (and per article split off its pages), in the order added. Articles
    numbered from ``first_new`` on were added by this scan; those before it were in the state,
    and only those the dump holds again are items."""
    for start, got in zip(itertools.count(0, batch_rows), detector.brief_columns(_ITEM_FIELDS, 0, batch_rows)):
        article_ids, canonical = got["id"], got["canonical"]
        items = {
            "id": article_ids,
            "cluster": got["story"],
            "canonical_id": canonical,
            "is_canonical": list(map(operator.eq, article_ids, canonical)),
            **{name: got[name] for name in _ITEM_FIELDS[1:]},
        }
        if start < first_new:
            keep = [i for i, (article_id, page) in enumerate(zip(article_ids, got["embedded_in"], strict=True))
                    if start + i >= first_new or article_id in ids or page in ids]
            items = {name: [values[i] for i in keep] for name, values in items.items()}
        yield items


@main.command()
@click.argument("story_or_article")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), default=Path("state"),
              show_default=True, help="The state folder to read.")
def show(story_or_article: str, state: Path) -> None:
    """Print a story's timeline: who carried it, when, under which credit, how similar.

    STORY_OR_ARTICLE is a story id or the id of any article in it. One line per carrier in time
    order: * marks the canonical copy; the credit says the source and where it was read (byline,
    dateline, source-line, closing); flags mark uncredited reposts, cut and extended copies and
    articles embedded in another page.
    """
    if not (state / "dedup.sqlite").exists():
        raise click.ClickException(f"{state}: no detector state here; pass --state DIR")
    try:
        with Detector.open(state) as detector:
            if story_or_article in detector:
                story = detector.story_of(story_or_article)
            else:
                story = detector.story(story_or_article)
    except KeyError:
        raise click.ClickException(f"no story or article {story_or_article!r} in {state}") from None
    except DedupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"story {story.story_id}: {story.size} carriers, canonical {story.canonical_id} "
               f"({story.canonical_reason})")
    for p in story.provenance:
        mark = "*" if p.is_canonical else " "
        credit = p.credit + (f" via {p.credit_via}" if p.credit_via else "") if p.credit else "-"
        where = f" [{p.credit_where}]" if p.credit_where else ""
        flags = f"  ({', '.join(p.flags)})" if p.flags else ""
        click.echo(f"{mark} {p.published or '-':19} {p.outlet or '-':12} {credit + where:28} "
                   f"sim {p.similarity:.2f} cont {p.containment:.2f}  {p.title or p.article_id}{flags}")
        if p.url:
            click.echo(f"  {'':19} {p.url}")


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}Z level={record.levelname.lower()} {record.getMessage()}"


def _logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    root = logging.getLogger("dedup")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


@main.command()
@click.option("--feeds", "feeds_path", type=click.Path(dir_okay=False, path_type=Path), default=Path("feeds.yaml"),
              show_default=True, help="The feeds to poll (see the example feeds.yaml).")
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), default=Path("state"), show_default=True,
              help="Where the detector and the feed state live; a restart continues from here.")
@click.option("--once", is_flag=True, help="Poll every enabled feed once, print a summary and exit.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="One line per poll and per decision at info; errors only at error.")
@click.option("--grace", type=float, default=20.0, show_default=True,
              help="Seconds to let polls in flight finish after SIGTERM/SIGINT before abandoning them.")
@click.option("--http", "http_address", metavar="HOST:PORT",
              help="Serve /health, /metrics (Prometheus) and /stories (latest, JSON) here, e.g. 127.0.0.1:8321.")
def run(feeds_path: Path, state: Path, once: bool, log_level: str, grace: float, http_address: str | None) -> None:
    """Poll the feeds of feeds.yaml and cluster their items into stories, until SIGTERM or SIGINT.

    Each feed is polled on its own interval (conditional GET, backoff after failures, Retry-After
    honoured); new and edited items go through the same engine as `dedup scan`. State is kept in
    --state, so a restart (or a crash) loses nothing and counts nothing twice.
    """
    import asyncio

    from dedup.feeds.config import load_feeds
    from dedup.feeds.daemon import poll_once, run_forever
    from dedup.feeds.state import FeedState

    _logging(log_level)
    http = None
    if http_address:
        host, _, port = http_address.rpartition(":")
        if not port.isdigit():
            raise click.BadParameter(f"{http_address!r}: expected HOST:PORT, e.g. 127.0.0.1:8321", param_hint="--http")
        http = (host or "127.0.0.1", int(port))
    try:
        config = load_feeds(feeds_path)
        detector = Detector.open(state)
    except DedupError as exc:
        raise click.ClickException(str(exc)) from None
    feed_state = FeedState(state)
    try:
        with detector:
            if once:
                results = asyncio.run(poll_once(config, detector, feed_state))
                for r in results:
                    detail = r.error if r.status == "error" else f"{r.new} new, {r.updated} updated"
                    click.echo(f"{r.feed:24} {r.status:13} {detail}")
                failed = sum(r.status == "error" for r in results)
                click.echo(f"{len(results)} feeds polled: {len(results) - failed} ok, {failed} failed; "
                           f"{sum(r.new for r in results)} new items")
                if results and failed == len(results):
                    raise SystemExit(1)
            else:
                asyncio.run(run_forever(config, detector, feed_state, grace=grace, http=http))
    finally:
        feed_state.close()


@main.command()
@click.option("--state", type=click.Path(file_okay=False, path_type=Path), default=Path("state"), show_default=True,
              help="The daemon's state folder.")
def status(state: Path) -> None:
    """Per feed: last success, last error, items, next poll due; totals of stories and copies."""
    import sqlite3

    from dedup.feeds.state import FeedState

    if not (state / FeedState.FILENAME).exists():
        raise click.ClickException(f"{state}: no daemon state here; run `dedup run --state {state}` first")
    feed_state = FeedState(state)
    try:
        rows = feed_state.feeds()
    finally:
        feed_state.close()
    now = time.time()
    click.echo(f"{'feed':24} {'items':>6}  {'last success':19}  {'next due':>9}  last error")
    for r in rows:
        due = "now" if r.next_due <= now else f"{(r.next_due - now) / 60:.0f} min"
        error = (r.last_error or "-") if r.last_status == "error" else "-"
        click.echo(f"{r.name:24} {r.items:6}  {r.last_success or 'never':19}  {due:>9}  {error}")
    db = state / "dedup.sqlite"
    if db.exists():
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            articles, stories = con.execute("SELECT COUNT(*), COUNT(DISTINCT story_id) FROM articles").fetchone()
        click.echo(f"{articles} articles in {stories} stories ({articles - stories} copies)")


#: Set by :func:`command`: a finished scan ends the process at once (see :func:`_exit_now`).
_EXIT_WHEN_DONE = False


def _exit_now() -> None:
    """End the process without freeing its objects: everything the scan made is written,
    renamed into place and closed, its temporary files are gone and its workers have stopped,
    and freeing the detector's objects one by one takes time for nothing (about a second at 100k
    articles). What the process registered to run at exit still runs (multiprocessing removes
    its temporary folder, logging flushes). Only in the command itself, never when ``main`` is
    called as a library."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone (a closed pipe): nothing more to say
            stream.flush()
    os._exit(0)


def command() -> None:
    """The ``dedup`` command (what ``pip`` installs, and ``python -m dedup.cli``)."""
    global _EXIT_WHEN_DONE
    _EXIT_WHEN_DONE = True
    main()


if __name__ == "__main__":  # pragma: no cover
    command()
