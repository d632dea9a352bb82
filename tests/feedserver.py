"""A real HTTP server on loopback for the daemon tests: fixture feeds and every kind of bad one."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape


@dataclass
class Item:
    guid: str
    title: str
    text: str
    link: str = ""
    published: str = "Tue, 21 Jul 2015 09:00:00 +0300"


def rss(items: list[Item], *, encoding: str = "utf-8", declared: str = "utf-8", full: bool = True) -> bytes:
    entries = []
    for it in items:
        body = escape(it.text).replace("\n", "&lt;br/&gt;")
        content = f"<content:encoded>{body}</content:encoded>" if full else f"<description>{body[:200]}</description>"
        entries.append(f"<item><guid isPermaLink=\"false\">{escape(it.guid)}</guid><title>{escape(it.title)}</title>"
                       f"<link>{escape(it.link)}</link><pubDate>{it.published}</pubDate>{content}</item>")
    doc = (f'<?xml version="1.0" encoding="{declared}"?>\n<rss version="2.0" '
           f'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>test</title>'
           f"<link>http://example.test/</link><description>d</description>{''.join(entries)}</channel></rss>")
    return doc.encode(encoding)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title><guid>b1</guid></item></channel></rss>"""


@dataclass
class FeedServer:
    """Routes: /feed/NAME (a fixture feed with an ETag), and the bad ones (see ``handle``)."""

    feeds: dict[str, bytes] = field(default_factory=dict)
    pages: dict[str, str] = field(default_factory=dict)
    page_delay: float = 0.0
    page_charset: str = "utf-8"
    hits: Counter[str] = field(default_factory=Counter)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        self.hits[path] += 1
        if path.startswith("/feed/"):
            body = self.feeds.get(path[6:])
            if body is None:
                return self._send(h, 404, b"no such feed")
            etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
            if h.headers.get("If-None-Match") == etag:
                return self._send(h, 304, b"", {"ETag": etag})
            return self._send(h, 200, body, {"ETag": etag, "Content-Type": "application/rss+xml; charset=utf-8"})
        if path.startswith("/page/"):
            time.sleep(self.page_delay)
            text = self.pages.get(path[6:], "")
            html = (f'<html><head><meta charset="{self.page_charset}"></head><body><article><h1>t</h1>'
                    f"{''.join(f'<p>{escape(p)}</p>' for p in text.splitlines())}</article></body></html>")
            return self._send(h, 200, html.encode(self.page_charset), {"Content-Type": "text/html"})
        if path == "/status500":
            return self._send(h, 500, b"oops")
        if path == "/slow":
            h.send_response(200)
            h.send_header("Content-Type", "application/rss+xml")
            h.end_headers()
            try:
                for _ in range(40):  # trickles: never a per-read timeout, only the overall deadline stops it
                    h.wfile.write(b" ")
                    h.wfile.flush()
                    time.sleep(0.25)
            except OSError:
                pass
            return None
        if path == "/ratelimited":
            return self._send(h, 429, b"slow down", {"Retry-After": "120"})
        if path == "/malformed":
            return self._send(h, 200, b'<?xml version="1.0"?><rss><channel><item><title>x</titl', {})
        if path == "/bomb":
            return self._send(h, 200, BOMB, {"Content-Type": "application/rss+xml"})
        if path == "/loop":
            return self._send(h, 302, b"", {"Location": "/loop"})
        if path == "/huge":
            # 50 MB of feed-looking bytes, gzipped on the wire into far less.
            payload = gzip.compress(b"<rss><channel>" + b"<item><title>x</title></item>" * (50_000_000 // 29), 1)
            return self._send(h, 200, payload, {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"})
        return self._send(h, 404, b"not found")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h.send_response(code)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if code != 304:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body and code != 304:
            with suppress(OSError):
                h.wfile.write(body)


@contextmanager
def serve(server: FeedServer) -> Iterator[FeedServer]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.handle(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


def json_feed(items: list[Item]) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
        {"id": it.guid, "url": it.link, "title": it.title, "content_text": it.text,
         "date_published": datetime(2015, 7, 21, 9, tzinfo=UTC).isoformat()} for it in items]},
        ensure_ascii=False).encode()


def rfc822(when: datetime) -> str:
    return format_datetime(when)
