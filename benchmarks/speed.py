"""Throughput and peak memory of `dedup scan` beside the plain datasketch peer, in the same run.

    python benchmarks/speed.py [--input ../shared/eval/dev/items.jsonl] [--repeats 3]

Prints the median wall time, docs/s and peak RSS of each, and the ratio of docs/s. The peer is
../shared/peers/run_datasketch.py (word 5-grams, MinHashLSH 0.5, union of matches), called as is.
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
    args = ap.parse_args()
    peer = SHARED / "peers" / "run_datasketch.py"
    if not args.input.exists() or not peer.exists():
        print(f"skipped: {args.input} or {peer} is absent (../shared sits beside the repo)")
        return 0
    with open(args.input, encoding="utf-8") as fh:
        docs = sum(1 for line in fh if line.strip())
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "dedup scan": [sys.executable, "-m", "dedup.cli", "scan", str(args.input), "-o", f"{tmp}/ours.jsonl", "-q"],
            "datasketch peer": [sys.executable, str(peer), str(args.input), f"{tmp}/peer.jsonl"],
        }
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
    print(f"speed ratio (dedup / datasketch peer): {rates['dedup scan'] / rates['datasketch peer']:.2f}x")
    print(json.dumps({k: round(v, 1) for k, v in rates.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
