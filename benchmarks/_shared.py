"""What the benchmark scripts share: where the labelled dev set is, and saying so when it is not."""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT.parent / "shared" / "eval"


def add_eval_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR, help="the shared evaluation folder")


def dev_folder(eval_dir: Path) -> Path | None:
    """The dev split's folder, or None (with a message) when the labelled set is absent."""
    dev = eval_dir / "dev"
    if not (dev / "items.jsonl").exists():
        print(f"skipped: {dev / 'items.jsonl'} is absent (the labelled set sits beside the repo as ../shared)")
        return None
    return dev
