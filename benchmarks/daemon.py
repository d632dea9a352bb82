"""One full pass of the daemon over many feeds served on loopback: wall time and peak memory.

    python benchmarks/daemon.py [--feeds 500] [--items 50]

Serves FEEDS RSS feeds of ITEMS items each (texts from ../shared/eval/dev, each feed a
different slice, so copies across feeds are real copies) from a local HTTP server, runs
`dedup run --once` on them in a fresh state, and prints the time of the pass, items per second
and the daemon's peak RSS. A second pass shows the cost of polling when nothing changed (304s).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

from _shared import add_eval_dir, dev_folder


def build_feeds(items: list[dict[str, str]], feeds: int, per_feed: int) -> dict[str, bytes]:
    out = {}
    for f in range(feeds):
        entries = []
        for i in range(per_feed):
            item = items[(f * per_feed + i) % len(items)]
            entries.append(
                f"<item><guid>{f}-{i}</guid><title>{escape(item.get('title') or '')}</title>"
                f"<link>https://outlet{f}.test/{item['id']}</link>"
                f"<pubDate>Tue, 21 Jul 2015 09:00:00 +0300</pubDate>"
                f"<content:encoded>{escape(item.get('text') or '')}</content:encoded></item>"
            )
        out[f"/f{f}"] = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
                         'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
                         + "".join(entries) + "</channel></rss>").encode()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_eval_dir(ap)
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--items", type=int, default=50)
    args = ap.parse_args()
    dev = dev_folder(args.eval_dir)
    if dev is None:
        return 0
    source = dev / "items.jsonl"
    with open(source, encoding="utf-8") as fh:
        items = [json.loads(line) for line in fh if line.strip()]
    bodies = build_feeds(items, args.feeds, args.items)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies.get(self.path)
            etag = f'"{len(body or b"")}"'
            if body is not None and self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200 if body else 404)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *a: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    with tempfile.TemporaryDirectory() as tmp:
        feeds_yaml = Path(tmp) / "feeds.yaml"
        lines = ["defaults: {timeout: 120, per_host: 8, max_bytes: 50000000}", "feeds:"]
        lines += [f"  - {{name: f{f}, outlet: outlet{f % 40}, url: 'http://127.0.0.1:{port}/f{f}'}}"
                  for f in range(args.feeds)]
        feeds_yaml.write_text("\n".join(lines) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "dedup.cli", "run", "--once", "--feeds", str(feeds_yaml), "--state",
                   f"{tmp}/state", "--log-level", "error"]
        timings = []
        for _ in range(2):
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            timings.append(time.perf_counter() - started)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    httpd.shutdown()
    total = args.feeds * args.items
    print(f"{args.feeds} feeds x {args.items} items = {total} items, loopback, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"first pass (all new):     {timings[0]:7.1f} s  {total / timings[0]:7.0f} items/s")
    print(f"second pass (all 304):    {timings[1]:7.1f} s")
    print(f"peak RSS of the daemon:   {peak:7.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
