"""The daemon: poll every feed of feeds.yaml on its own schedule and feed new items to the engine.

One APScheduler job per feed (jittered, never overlapping itself, missed runs coalesced). A poll
fetches (conditional GET), parses, fetches full pages for summary-only feeds when asked, and adds
each new or edited item through :class:`dedup.Detector`; one bad feed is logged and backed off,
never stopping the others. On SIGTERM or SIGINT the daemon stops scheduling, lets the polls in
flight finish (or abandons them after a grace period: their items are fetched again next time),
and exits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dedup._model import Article
from dedup.detector import Detector
from dedup.feeds.config import Feed, FeedsConfig
from dedup.feeds.fetch import Fetcher, FetchError
from dedup.feeds.http import Monitor, serve_monitor
from dedup.feeds.parse import FeedItem, ParseError, parse_feed
from dedup.feeds.state import FeedState

log = logging.getLogger("dedup.daemon")

MAX_BACKOFF = 6 * 3600.0


@dataclass(slots=True)
class PollResult:
    feed: str
    status: str  # "ok", "not-modified", "error", "skipped"
    new: int = 0
    updated: int = 0
    error: str = ""


@dataclass(slots=True)
class Poller:
    """Polls feeds into a detector, keeping per-feed state."""

    detector: Detector
    state: FeedState
    fetcher: Fetcher
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    async def poll(self, feed: Feed, *, force: bool = False) -> PollResult:
        row = self.state.feed(feed.name, feed.url)
        now = self.clock()
        if not force and row.failures and row.next_due > now:
            return PollResult(feed.name, "skipped")  # backing off after failures
        stamp = _iso(now)
        try:
            fetched = await self.fetcher.fetch(feed.url, feed.limits, etag=row.etag, last_modified=row.last_modified)
            if fetched.status == 304:
                self.state.succeeded(feed.name, etag=row.etag, last_modified=row.last_modified, status="not-modified",
                                     now=stamp, next_due=now + feed.limits.interval)
                log.info("poll feed=%s status=not-modified", feed.name)
                return PollResult(feed.name, "not-modified")
            items = parse_feed(fetched.body, fetched.content_type, timezone=feed.timezone,
                               first_seen=dt.datetime.fromtimestamp(now, dt.UTC))
        except (FetchError, ParseError) as exc:
            return self._failed(feed, row.failures, str(exc), getattr(exc, "retry_after", None), now)
        pending: list[tuple[FeedItem, Article, str, int]] = []
        keys: set[str] = set()
        for item in items:
            if item.key in keys:  # a feed listing one item twice: the first counts
                continue
            keys.add(item.key)
            prepared = await self._article(feed, item, stamp)
            if prepared is None:
                continue
            article, digest, versions = prepared
            if article.id in self.detector:
                # Added before a crash, not recorded: the article stands as it was stored (a page
                # fetched again may differ by a byte, and an id keeps its first content).
                self.state.record_item(item.key, feed.name, article.id, digest, versions, stamp)
                continue
            pending.append((item, article, digest, versions))
        # One transaction for the poll's new and edited items, then their records: a crash in
        # between leaves articles the next poll finds "unchanged", never items marked done but lost.
        decisions = self.detector.add_many([article for _, article, _, _ in pending])
        for (item, article, digest, versions), decision in zip(pending, decisions, strict=True):
            self.state.record_item(item.key, feed.name, article.id, digest, versions, stamp)
            log.info("decision feed=%s article=%s action=%s story=%s canonical=%s containment=%.2f", feed.name,
                     article.id, decision.action, decision.story_id, decision.canonical_id, decision.containment)
        new = sum(1 for _, _, _, v in pending if v == 1)
        updated = len(pending) - new
        # Validators only now: a crash before this line fetches the whole feed again next time.
        self.state.succeeded(feed.name, etag=fetched.etag, last_modified=fetched.last_modified, status="ok",
                             now=stamp, next_due=now + feed.limits.interval)
        log.info("poll feed=%s status=ok items=%d new=%d updated=%d", feed.name, len(items), new, updated)
        return PollResult(feed.name, "ok", new, updated)

    async def _article(self, feed: Feed, item: FeedItem, stamp: str) -> tuple[Article, str, int] | None:
        """The article for a new or edited item (with its digest and version), None if seen."""
        known = self.state.item(item.key)
        digest = item.content_hash()
        if known is not None and known.content_hash == digest:
            return None
        text = item.text
        if feed.full_page and item.summary_only and item.url:
            text = await self._full_text(feed, item) or text
        versions = 1 if known is None else known.versions + 1
        # An edited item becomes a new version of its article (same story, the newer text).
        article_id = item.key if versions == 1 else f"{item.key}#v{versions}"
        article = Article(id=article_id, text=text, title=item.title, url=item.url, outlet=feed.outlet,
                          published=item.published, fetched_at=stamp, outlet_is_agency=feed.agency)
        return article, digest, versions

    async def _full_text(self, feed: Feed, item: FeedItem) -> str:
        try:
            page = await self.fetcher.fetch(item.url, feed.limits)
        except FetchError as exc:
            log.warning("page feed=%s url=%s error=%r (kept the feed's summary)", feed.name, item.url, str(exc))
            return ""
        import trafilatura  # imported on first use: it is slow to import and most feeds carry full text

        # Bytes, not text: trafilatura finds the page's charset itself. deduplicate=False: its
        # process-wide cache would drop repeated bodies, the very copies we look for.
        try:
            return trafilatura.extract(page.body, deduplicate=False, include_comments=False) or ""
        except Exception as exc:  # a page it cannot read must not cost the item: keep the summary
            log.warning("page feed=%s url=%s error=%r (kept the feed's summary)", feed.name, item.url, str(exc))
            return ""

    def _failed(self, feed: Feed, failures: int, error: str, retry_after: float | None, now: float) -> PollResult:
        delay = min(feed.limits.interval * 2 ** min(failures, 10), MAX_BACKOFF) * self.rng.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(retry_after, min(delay, MAX_BACKOFF))
        count = self.state.failed(feed.name, error=error, now=_iso(now), next_due=now + delay)
        log.error("poll feed=%s status=error failures=%d retry_in=%.0fs error=%r", feed.name, count, delay, error)
        return PollResult(feed.name, "error", error=error)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


async def poll_once(config: FeedsConfig, detector: Detector, state: FeedState) -> list[PollResult]:
    """One pass over every enabled feed, concurrently (per-host limits apply)."""
    fetcher = Fetcher()
    poller = Poller(detector, state, fetcher)
    try:
        results = await asyncio.gather(*(_guarded(poller, f, force=True) for f in config.enabled))
    finally:
        await fetcher.aclose()
    return list(results)


async def _guarded(poller: Poller, feed: Feed, *, force: bool) -> PollResult:
    try:
        return await poller.poll(feed, force=force)
    except Exception as exc:  # one feed's bug must not stop the others; the message says what it was
        log.exception("poll feed=%s status=error unexpected=%r", feed.name, str(exc))
        failures = poller.state.feed(feed.name, feed.url).failures
        return poller._failed(feed, failures, f"{type(exc).__name__}: {exc}", None, poller.clock())


async def run_forever(config: FeedsConfig, detector: Detector, state: FeedState, *, grace: float = 20.0,
                      stop: asyncio.Event | None = None, http: tuple[str, int] | None = None) -> None:
    """Poll on schedule until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    ``http`` (host, port) serves the monitoring endpoint (see :mod:`dedup.feeds.http`).
    """
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.interval import IntervalTrigger

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fetcher = Fetcher()
    poller = Poller(detector, state, fetcher)
    in_flight: dict[str, asyncio.Task[PollResult]] = {}
    monitor = Monitor(detector, state)
    server = None
    if http is not None:
        server = await serve_monitor(monitor, http[0], http[1])
        log.info("http endpoint=%s:%d paths=/health,/metrics,/stories", http[0], http[1])

    async def counted(feed: Feed) -> PollResult:
        result = await _guarded(poller, feed, force=False)
        monitor.polls[(result.feed, result.status)] += 1
        return result

    async def launch(feed: Feed) -> None:
        # A coroutine job runs on the event loop; it only starts the poll, which the daemon tracks.
        if stop.is_set() or feed.name in in_flight:  # never two polls of one feed at once
            return
        task = asyncio.create_task(counted(feed))
        in_flight[feed.name] = task
        task.add_done_callback(lambda _: in_flight.pop(feed.name, None))

    scheduler = AsyncIOScheduler(event_loop=loop)
    for feed in config.enabled:
        interval = feed.limits.interval
        scheduler.add_job(launch, IntervalTrigger(seconds=interval, jitter=min(30.0, interval / 10)), args=[feed],
                          id=feed.name, max_instances=1, coalesce=True, misfire_grace_time=int(interval),
                          next_run_time=dt.datetime.now(dt.UTC))
    scheduler.start()
    log.info("daemon started feeds=%d", len(config.enabled))
    try:
        await stop.wait()
        log.info("daemon stopping in_flight=%d", len(in_flight))
        scheduler.pause()
        if in_flight:
            _, pending = await asyncio.wait(set(in_flight.values()), timeout=grace)
            for task in pending:  # abandoned: nothing of theirs was recorded as done, so they are redone
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
    finally:
        scheduler.shutdown(wait=False)
        if server is not None:
            server.close()
            await server.wait_closed()
        await fetcher.aclose()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("daemon stopped")
