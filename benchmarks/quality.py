"""Story quality on the labelled dev set: scan it, score it with the shared scorer (--pairs).

    python benchmarks/quality.py [--eval-dir ../shared/eval] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _shared import ROOT, add_eval_dir, dev_folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_eval_dir(ap)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "quality")
    args = ap.parse_args()
    dev = dev_folder(args.eval_dir)
    if dev is None:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    pred = args.out / "dev_items.jsonl"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dedup.cli", "scan", str(dev / "items.jsonl"), "-o", str(pred)],
                   check=True)
    print(f"scan took {time.perf_counter() - started:.1f}s")
    subprocess.run([sys.executable, str(args.eval_dir / "score.py"), str(dev / "gold.jsonl"), str(pred),
                    "--pairs", str(dev / "pairs.jsonl")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
