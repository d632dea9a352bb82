"""The daemon's optional HTTP endpoint (``dedup run --http 127.0.0.1:8321``), for monitoring:

* ``GET /health``: ``{"status": "ok", ...}`` while the daemon runs;
* ``GET /metrics``: Prometheus text format (polls by feed and outcome, items, failures, last
  success per feed, articles and stories);
* ``GET /stories?limit=20``: the stories that grew most recently, as JSON.

Read-only and meant for localhost; it is a few lines on asyncio's streams, not a web framework.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dedup.detector import Detector
from dedup.feeds.state import FeedState


class Monitor:
    """What the endpoint reports; the daemon counts polls into it."""

    def __init__(self, detector: Detector, state: FeedState) -> None:
        self.detector = detector
        self.state = state
        self.started = time.time()
        self.polls: Counter[tuple[str, str]] = Counter()

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "uptime_s": round(time.time() - self.started, 1), "articles": len(self.detector),
                "feeds": len(self.state.feeds())}

    def metrics(self) -> str:
        out = ["# HELP dedup_polls_total Feed polls by outcome.", "# TYPE dedup_polls_total counter"]
        out += [f'dedup_polls_total{{feed="{_label(f)}",status="{s}"}} {n}' for (f, s), n in sorted(self.polls.items())]
        rows = self.state.feeds()
        out += ["# HELP dedup_feed_items Items taken from each feed.", "# TYPE dedup_feed_items gauge"]
        out += [f'dedup_feed_items{{feed="{_label(r.name)}"}} {r.items}' for r in rows]
        out += ["# HELP dedup_feed_failures Consecutive failures of each feed.", "# TYPE dedup_feed_failures gauge"]
        out += [f'dedup_feed_failures{{feed="{_label(r.name)}"}} {r.failures}' for r in rows]
        out += ["# HELP dedup_articles Articles in the detector.", "# TYPE dedup_articles gauge",
                f"dedup_articles {len(self.detector)}",
                "# HELP dedup_stories Stories in the detector.", "# TYPE dedup_stories gauge",
                f"dedup_stories {self.detector.story_count}"]
        return "\n".join(out) + "\n"

    def stories(self, limit: int) -> list[dict[str, Any]]:
        return [
            {"story": s.story_id, "canonical_id": s.canonical_id, "canonical_reason": s.canonical_reason,
             "size": s.size, "outlets": list(s.outlets),
             "last_published": max((p.published for p in s.provenance if p.published), default=None)}
            for s in self.detector.recent_stories(limit)
        ]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


async def serve_monitor(monitor: Monitor, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass  # headers: nothing here needs them
            parts = request.decode("latin-1").split()
            method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "/")
            url = urlsplit(target)
            if method != "GET":
                code, ctype, body = 405, "text/plain", "only GET\n"
            elif url.path == "/health":
                code, ctype, body = 200, "application/json", json.dumps(monitor.health())
            elif url.path == "/metrics":
                code, ctype, body = 200, "text/plain; version=0.0.4", monitor.metrics()
            elif url.path == "/stories":
                limit = int((parse_qs(url.query).get("limit") or ["20"])[0] or 20)
                code, ctype = 200, "application/json"
                body = json.dumps(monitor.stories(max(1, min(limit, 500))), ensure_ascii=False)
            else:
                code, ctype, body = 404, "text/plain", "try /health, /metrics or /stories\n"
        except (TimeoutError, ValueError, UnicodeDecodeError):
            code, ctype, body = 400, "text/plain", "bad request\n"
        data = body.encode("utf-8")
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[code]
        writer.write(f"HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}; charset=utf-8\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        try:
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
