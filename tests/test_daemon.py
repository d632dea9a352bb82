"""The daemon against a real HTTP server on loopback: stories across feeds, politeness, bad feeds,
and the process itself (SIGTERM, SIGKILL and restart)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from edits import first_half, new_headline
from feedserver import FeedServer, Item, json_feed, rss, serve

from dedup import Detector
from dedup.feeds import daemon as daemon_module
from dedup.feeds.config import ConfigError, load_feeds
from dedup.feeds.daemon import poll_once
from dedup.feeds.parse import normalize_url, parse_feed
from dedup.feeds.state import FeedState


def write_feeds(path: Path, server: FeedServer, feeds: dict[str, str], **extra: object) -> Path:
    lines = ["defaults: {interval: 1, timeout: 3, max_bytes: 5000000, per_host: 4}", "feeds:"]
    for name, route in feeds.items():
        options = "".join(f", {k}: {str(v).lower() if isinstance(v, bool) else v}"
                          for k, v in extra.get(name, {}).items())  # type: ignore[attr-defined]
        lines.append(f"  - {{name: {name}, outlet: {name}, url: \"{server.url(route)}\"{options}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def poll(feeds_yaml: Path, state: Path) -> list[daemon_module.PollResult]:
    config = load_feeds(feeds_yaml)
    feed_state = FeedState(state)
    try:
        with Detector.open(state) as detector:
            return asyncio.run(poll_once(config, detector, feed_state))
    finally:
        feed_state.close()


def agency_and_copy(stories: dict[str, str]) -> tuple[list[Item], list[Item]]:
    agency = [Item(f"spa-{k}", f"عنوان {k}", t, link=f"https://spa.test/{k}") for k, t in stories.items()]
    papers = [Item(f"okaz-{k}", f"عنوان آخر {k}", new_headline(t), link=f"https://okaz.test/{k}?utm_source=rss")
              for k, t in list(stories.items())[:3]]
    return agency, papers


def test_stories_form_across_feeds_and_the_agency_item_is_canonical(tmp_path: Path, stories: dict[str, str]) -> None:
    agency, papers = agency_and_copy(stories)
    with serve(FeedServer(feeds={"spa": rss(agency), "okaz": rss(papers)})) as server:
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"spa": "/feed/spa", "okaz": "/feed/okaz"},
                            spa={"agency": True})
        results = poll(feeds, tmp_path / "state")
    assert {r.feed: (r.status, r.new) for r in results} == {"spa": ("ok", len(agency)), "okaz": ("ok", 3)}
    with Detector.open(tmp_path / "state") as d:
        for k in list(stories)[:3]:
            story = d.story_of(normalize_url(f"https://okaz.test/{k}"))
            assert {p.outlet for p in story.provenance} == {"spa", "okaz"}
            assert story.canonical_id == normalize_url(f"https://spa.test/{k}")


def test_not_modified_costs_no_parsing(tmp_path: Path, stories: dict[str, str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    agency, _ = agency_and_copy(stories)
    calls = []

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return parse_feed(*args, **kwargs)

    monkeypatch.setattr(daemon_module, "parse_feed", counting)
    with serve(FeedServer(feeds={"spa": rss(agency)})) as server:
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"spa": "/feed/spa"})
        first = poll(feeds, tmp_path / "state")
        second = poll(feeds, tmp_path / "state")
    assert (first[0].status, second[0].status) == ("ok", "not-modified")
    assert len(calls) == 1


def test_each_bad_feed_backs_off_with_a_clear_error_and_the_others_work(
    tmp_path: Path, stories: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    agency, _ = agency_and_copy(stories)
    arabic = [Item("w1", "خبر", stories["weather"], link="https://w.test/1")]
    bad = {"e500": "/status500", "slow": "/slow", "limited": "/ratelimited", "malformed": "/malformed",
           "huge": "/huge", "loop": "/loop", "bomb": "/bomb"}
    expected = {"e500": "HTTP 500", "slow": "no complete response within 3 s", "limited": "HTTP 429",
                "malformed": "malformed feed", "huge": "over the limit of 5000000 bytes", "loop": "redirect loop",
                "bomb": "entities"}
    server = FeedServer(feeds={"spa": rss(agency), "cp1256": rss(arabic, encoding="cp1256", declared="utf-8")})
    with serve(server):
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"spa": "/feed/spa", "cp1256": "/feed/cp1256", **bad})
        started = time.time()
        with caplog.at_level("ERROR", logger="dedup.daemon"):
            results = {r.feed: r for r in poll(feeds, tmp_path / "state")}
    assert results["spa"].status == "ok" and results["spa"].new == len(agency)
    # Mislabelled windows-1256 is read as what it is, not as mojibake.
    assert results["cp1256"].status == "ok"
    with Detector.open(tmp_path / "state") as d:
        assert "الرياح" in d.record(normalize_url("https://w.test/1")).text or stories["weather"][:20] in \
            d.record(normalize_url("https://w.test/1")).text
    state = FeedState(tmp_path / "state")
    rows = {r.name: r for r in state.feeds()}
    state.close()
    for name, message in expected.items():
        assert results[name].status == "error", name
        assert message in results[name].error, (name, results[name].error)
        assert rows[name].failures == 1 and rows[name].next_due > started, name
        assert any(name in r.getMessage() and "status=error" in r.getMessage() for r in caplog.records), name
    assert rows["limited"].next_due >= started + 120  # Retry-After honoured


def test_same_item_again_is_not_new_and_an_edit_updates_it(tmp_path: Path, stories: dict[str, str]) -> None:
    item = Item("g1", "عنوان", stories["health"], link="http://paper.test/a/1/?utm_campaign=x")
    server = FeedServer(feeds={"p": rss([item])})
    with serve(server):
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"p": "/feed/p"})
        assert poll(feeds, tmp_path / "state")[0].new == 1
        # Same page, other tracking parameters and https: the same item.
        server.feeds["p"] = rss([Item("g1", "عنوان", stories["health"], link="https://paper.test/a/1?fbclid=z")])
        again = poll(feeds, tmp_path / "state")[0]
        assert (again.new, again.updated) == (0, 0)
        server.feeds["p"] = rss([Item("g1", "عنوان", stories["health"] + "\nتحديث: أضيفت تفاصيل جديدة.",
                                      link="https://paper.test/a/1")])
        edited = poll(feeds, tmp_path / "state")[0]
    assert (edited.new, edited.updated) == (0, 1)
    with Detector.open(tmp_path / "state") as d:
        key = normalize_url("https://paper.test/a/1")
        assert d.story_of(f"{key}#v2").story_id == d.story_of(key).story_id


def test_json_feed_and_summary_only_feeds_with_full_pages(tmp_path: Path, stories: dict[str, str]) -> None:
    # The page is windows-1256 (declared in its meta tag only): its text must come out readable.
    server = FeedServer(feeds={"j": json_feed([Item("j1", "عنوان", stories["tech"], link="https://j.test/1")])},
                        page_charset="windows-1256")
    with serve(server):
        server.pages["s1"] = stories["summit"]
        server.feeds["s"] = rss([Item("s1", "عنوان", first_half(stories["summit"])[:150],
                                      link=server.url("/page/s1"))], full=False)
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"j": "/feed/j", "s": "/feed/s"},
                            s={"full_page": True})
        results = {r.feed: r for r in poll(feeds, tmp_path / "state")}
        assert server.hits["/page/s1"] == 1
    assert results["j"].new == 1 and results["s"].new == 1
    with Detector.open(tmp_path / "state") as d:
        page = d.record(normalize_url(server.url("/page/s1")))
    assert len(page.text.split()) > 0.8 * len(stories["summit"].split())  # the page's text, not the summary
    assert stories["summit"].split()[5] in page.text


@pytest.mark.parametrize(("extra", "message"), [
    ("  - name: b\n    url: ftp://b.test\n", r"feeds.yaml:5: field 'url'"),
    ("    agency: maybe\n", r"feeds.yaml:4: field 'agency' must be true or false"),
    ("    colour: red\n", r"feeds.yaml:4: unknown field 'colour'"),
    ("    timezone: Mars/Olympus\n", r"feeds.yaml:4: field 'timezone'"),
    ("    interval: -5\n", r"feeds.yaml:4: field 'interval' must be a positive number"),
    ("  - name: a\n    url: https://c.test/rss\n", r"feeds.yaml:4: feed name 'a' is also used on line 2"),
])
def test_feeds_yaml_errors_name_the_line_and_field(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - name: a\n    url: https://a.test/rss\n" + extra, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_feeds(path)


def test_the_shipped_feeds_yaml_is_valid() -> None:
    config = load_feeds(Path(__file__).resolve().parents[1] / "feeds.yaml")
    assert len(config.enabled) >= 11 and any(f.agency for f in config.feeds)


# -- the process -------------------------------------------------------------------------------

def _daemon(feeds: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dedup.cli", "run", "--feeds", str(feeds), "--state", str(state),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _count(state: Path) -> tuple[int, int]:
    if not (state / "dedup.sqlite").exists():
        return 0, 0
    with closing(sqlite3.connect(state / "dedup.sqlite")) as db:
        try:
            articles, distinct = db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM articles").fetchone()
        except sqlite3.OperationalError:  # the daemon is still creating it
            return 0, 0
    return articles, distinct


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sigterm_stops_the_daemon_cleanly_and_the_endpoint_reports(tmp_path: Path, stories: dict[str, str]) -> None:
    agency, papers = agency_and_copy(stories)
    port = _free_port()
    with serve(FeedServer(feeds={"spa": rss(agency), "okaz": rss(papers)})) as server:
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"spa": "/feed/spa", "okaz": "/feed/okaz"},
                            spa={"agency": True})
        proc = _daemon(feeds, tmp_path / "state", "--http", f"127.0.0.1:{port}")
        try:
            _wait_for(lambda: _count(tmp_path / "state")[0] == len(agency) + len(papers))
            base = f"http://127.0.0.1:{port}"
            assert httpx.get(f"{base}/health").json()["status"] == "ok"
            metrics = httpx.get(f"{base}/metrics").text
            assert f"dedup_articles {len(agency) + len(papers)}" in metrics
            assert 'dedup_polls_total{feed="spa",status="ok"}' in metrics
            latest = httpx.get(f"{base}/stories?limit=3").json()
            assert len(latest) == 3 and all(s["canonical_id"].startswith("https://spa.test/") for s in latest)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            _stop(proc)
    assert proc.returncode == 0, err
    assert "daemon stopped" in err


def test_sigkill_mid_poll_then_restart_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, stories: dict[str, str]
) -> None:
    # A fast feed whose items are in, and a summary-only feed whose slow pages keep its poll going:
    # the daemon is killed in the middle of that poll.
    server = FeedServer(page_delay=0.3)
    fast, _ = agency_and_copy(stories)
    slow = []
    for n, (k, t) in enumerate(list(stories.items()) * 2):
        key = f"{k}-{n}"
        server.pages[key] = t + f"\nسطر مميز رقم {n} في هذه النسخة من الخبر."
        slow.append(Item(key, f"عنوان {key}", t[:100], link=f"/page/{key}"))
    with serve(server):
        for it in slow:
            it.link = server.url(it.link)
        server.feeds["fast"] = rss(fast)
        server.feeds["slow"] = rss(slow, full=False)
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"fast": "/feed/fast", "slow": "/feed/slow"},
                            slow={"full_page": True})
        state = tmp_path / "state"
        proc = _daemon(feeds, state)
        try:
            _wait_for(lambda: _count(state)[0] == len(fast) and sum(
                v for k, v in server.hits.items() if k.startswith("/page/")) >= 2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            _stop(proc)
        assert _count(state)[0] == len(fast)  # killed with the slow feed's poll unfinished
        again = subprocess.run([sys.executable, "-m", "dedup.cli", "run", "--once", "--feeds", str(feeds),
                                "--state", str(state), "--log-level", "error"], capture_output=True, text=True,
                               timeout=120)
    assert again.returncode == 0, again.stderr
    articles, distinct = _count(state)
    assert articles == distinct == len(fast) + len(slow)
    feed_state = FeedState(state)
    try:
        assert {r.name: r.items for r in feed_state.feeds()} == {"fast": len(fast), "slow": len(slow)}
    finally:
        feed_state.close()


def test_once_without_network_reports_each_feed_and_exits(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - {name: nowhere, url: 'http://127.0.0.1:9/rss'}\n"
                     "  - {name: nohost, url: 'http://no-such-host.invalid/rss'}\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "dedup.cli", "run", "--once", "--feeds", str(feeds), "--state",
                             str(tmp_path / "state"), "--log-level", "error"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "2 feeds polled: 0 ok, 2 failed" in result.stdout
    assert "nowhere" in result.stdout and "nohost" in result.stdout
    status = subprocess.run([sys.executable, "-m", "dedup.cli", "status", "--state", str(tmp_path / "state")],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "nowhere" in status.stdout and "ConnectError" in status.stdout


def test_an_item_listed_twice_in_one_feed_counts_once(tmp_path: Path, stories: dict[str, str]) -> None:
    first = Item("g1", "عنوان", stories["tech"], link="https://p.test/1")
    twice = Item("g1b", "عنوان معدل", stories["tech"] + "\nنسخة ثانية في القائمة نفسها", link="https://p.test/1")
    with serve(FeedServer(feeds={"p": rss([first, twice])})) as server:
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"p": "/feed/p"})
        (result,) = poll(feeds, tmp_path / "state")
    assert (result.status, result.new) == ("ok", 1)


def test_an_item_stored_before_a_crash_but_not_recorded_is_not_added_again(tmp_path: Path,
                                                                          stories: dict[str, str]) -> None:
    from dedup import Article

    key = normalize_url("https://p.test/1")
    with Detector.open(tmp_path / "state") as d:  # the article went in; the crash came before its record
        d.add(Article(id=key, text=stories["tech"] + "\nسطر تغير عند جلب الصفحة مرة أخرى", outlet="p"))
    with serve(FeedServer(feeds={"p": rss([Item("g1", "عنوان", stories["tech"], link="https://p.test/1")])})) as server:
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"p": "/feed/p"})
        (result,) = poll(feeds, tmp_path / "state")
    assert (result.status, result.new) == ("ok", 0)
    state = FeedState(tmp_path / "state")
    try:
        assert state.item(key) is not None
    finally:
        state.close()


def test_an_unexpected_failure_in_one_feed_is_backed_off_and_the_others_go_on(
    tmp_path: Path, stories: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    agency, papers = agency_and_copy(stories)
    original = daemon_module.parse_feed

    def broken_for_okaz(body: bytes, *args, **kwargs):  # type: ignore[no-untyped-def]
        if b"okaz.test" in body:
            raise RuntimeError("a bug in parsing")
        return original(body, *args, **kwargs)

    monkeypatch.setattr(daemon_module, "parse_feed", broken_for_okaz)
    with serve(FeedServer(feeds={"spa": rss(agency), "okaz": rss(papers)})) as server:
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"spa": "/feed/spa", "okaz": "/feed/okaz"})
        results = {r.feed: r for r in poll(feeds, tmp_path / "state")}
    assert results["spa"].status == "ok" and results["spa"].new == len(agency)
    assert results["okaz"].status == "error" and "RuntimeError: a bug in parsing" in results["okaz"].error
    state = FeedState(tmp_path / "state")
    try:
        assert {r.name: r.failures for r in state.feeds()} == {"spa": 0, "okaz": 1}
    finally:
        state.close()


def test_an_item_with_neither_link_nor_guid_is_kept_and_known_again(tmp_path: Path, stories: dict[str, str]) -> None:
    server = FeedServer(feeds={"p": rss([Item("", "عنوان بلا رابط", stories["health"], link="")])})
    with serve(server):
        feeds = write_feeds(tmp_path / "feeds.yaml", server, {"p": "/feed/p"})
        first = poll(feeds, tmp_path / "state")[0]
        server.feeds["p"] += b" "  # another ETag: fetched and parsed again
        again = poll(feeds, tmp_path / "state")[0]
    assert (first.new, again.new) == (1, 0)
