"""Throughput and peak memory of `dedup scan` beside the plain datasketch peer, in the same run.

    python benchmarks/speed.py [--input ../shared/eval/dev/items.jsonl] [--repeats 3]
                               [--peers datasketch,rensa-lsh-sh5 --peer-python PEERS_VENV/bin/python]

Prints the median wall time, docs/s and peak RSS of each, and the ratio of docs/s against each
peer. The default peer is ../shared/peers/run_datasketch.py (word 5-grams, MinHashLSH 0.5, union
of matches), called as is with this interpreter (datasketch is a dependency of ours); the other
peers need the venv ../shared/peers/README.md describes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scaling import PEERS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one run of ``command`` in a fresh process tree."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *command], check=True, capture_output=True, text=True)
    wall, rss_kib = out.stdout.split()
    return float(wall), int(rss_kib) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", type=Path, default=SHARED / "eval" / "dev" / "items.jsonl")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peers", default="datasketch", help=f"comma-separated, from: {', '.join(PEERS)}")
    ap.add_argument("--peer-python", default=sys.executable, help="interpreter of the venv the peers are in")
    args = ap.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    for name in peers:
        if name not in PEERS:
            ap.error(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
    if not args.input.exists() or not (SHARED / "peers").exists():
        print(f"skipped: {args.input} or {SHARED / 'peers'} is absent (../shared sits beside the repo)")
        return 0
    with open(args.input, encoding="utf-8") as fh:
        docs = sum(1 for line in fh if line.strip())
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "dedup scan": [sys.executable, "-m", "dedup.cli", "scan", str(args.input), "-o", f"{tmp}/ours.jsonl", "-q"],
        }
        for name in peers:
            script, *options = PEERS[name]
            commands[name] = [args.peer_python, str(SHARED / "peers" / script), str(args.input), f"{tmp}/{name}.jsonl",
                              *options]
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeats):  # interleaved, so both see the same machine load
            for name, command in commands.items():
                runs[name].append(measure(command))
    print(f"{docs} documents, {args.repeats} runs each, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{'tool':18} {'median s':>9} {'docs/s':>9} {'peak MiB':>9}")
    rates = {}
    for name, values in runs.items():
        wall = statistics.median(v[0] for v in values)
        rss = max(v[1] for v in values)
        rates[name] = docs / wall
        print(f"{name:18} {wall:9.2f} {rates[name]:9.0f} {rss:9.0f}")
    for name in peers:
        print(f"speed ratio (dedup / {name}): {rates['dedup scan'] / rates[name]:.2f}x")
    print(json.dumps({k: round(v, 1) for k, v in rates.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
