"""Time of each step of the engine, one process, no workers: what a change to one step moves.

    python benchmarks/steps.py [--input out/scaling/corpus_100000.jsonl] [--articles 8000]
                               [--index-articles 100000] [--repeats 3]

Prints, per article, the median of ``--repeats`` passes of: cleaning, credits, word hashes,
shingling and signing, and all of them together (what a worker does for an article). Then the
band index: the articles' signatures added in batches of 1,000, as a scan adds them, with the
compiled hash table and with the numpy runs the index keeps until it is compiled (both must find
the same candidates: their checksum is printed). The input defaults to the 100k corpus of
benchmarks/scaling.py when it was generated, else the dev set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _shared import ROOT, add_eval_dir, dev_folder

from dedup.detector import _signer
from dedup.match import BandIndex, MatchConfig
from dedup.sketch import SketchConfig
from dedup.text.clean import clean
from dedup.text.credits import credits_in_lines
from dedup.text.wordhash import word_hashes, word_hashes_many


def _median_seconds(step: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _rows(path: Path, limit: int) -> list[tuple[str, str, str]]:
    with open(path, encoding="utf-8") as fh:
        return [(o["text"], o.get("title") or "", o.get("byline") or "")
                for o in map(json.loads, itertools.islice(fh, limit))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_eval_dir(ap)
    ap.add_argument("--input", type=Path, default=None, help="a JSONL dump (id, text, title, byline)")
    ap.add_argument("--articles", type=int, default=8000, help="articles timed through the text steps")
    ap.add_argument("--index-articles", type=int, default=100_000, help="articles added to the band index")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    path = args.input
    if path is None:
        path = ROOT / "out" / "scaling" / "corpus_100000.jsonl"
        if not path.exists():
            dev = dev_folder(args.eval_dir)
            if dev is None:
                return 0
            path = dev / "items.jsonl"
    config = SketchConfig()
    signer = _signer(config)
    rows = _rows(path, args.articles)
    n = len(rows)
    print(f"{path} ({n} articles through the text steps, medians of {args.repeats})")
    word_hashes("warm up the compiled kernels", config.hash_seed)
    signer.shingle_and_sign([word_hashes("warm up", config.hash_seed)], config.shingle_words)

    def words_of(cleaned: list[Any]) -> tuple[Any, Any]:
        # As a worker hashes them: the texts of a batch of 1,000 in one call.
        batches = [word_hashes_many([c.main for c in cleaned[at : at + 1000]], config.hash_seed)
                   for at in range(0, len(cleaned), 1000)]
        return np.concatenate([w for w, _ in batches]), np.concatenate([c for _, c in batches])

    took, cleaned = _median_seconds(lambda: [clean(text, title) for text, title, _ in rows], args.repeats)
    steps = {"clean": took}
    steps["credits"], _ = _median_seconds(
        lambda: [credits_in_lines(c.source_lines, r[2]) for c, r in zip(cleaned, rows, strict=True)], args.repeats)
    steps["word hashes"], words = _median_seconds(lambda: words_of(cleaned), args.repeats)
    steps["shingle and sign"], _ = _median_seconds(
        lambda: signer.shingle_and_sign_words(words[0], words[1], config.shingle_words), args.repeats)

    def everything() -> None:
        done = [clean(text, title) for text, title, _ in rows]
        [credits_in_lines(c.source_lines, r[2]) for c, r in zip(done, rows, strict=True)]
        signer.shingle_and_sign_words(*words_of(done), config.shingle_words)

    steps["all of them"], _ = _median_seconds(everything, args.repeats)
    for name, seconds in steps.items():
        print(f"  {name:18} {seconds / n * 1e6:8.1f} us an article")

    # The band index, over the signatures of --index-articles articles.
    signatures = []
    with open(path, encoding="utf-8") as fh:
        for chunk in iter(lambda: [json.loads(line) for line in itertools.islice(fh, 5000)], []):
            texts = [clean(o["text"], o.get("title") or "").main for o in chunk]
            signatures.append(signer.shingle_and_sign([word_hashes(t, config.hash_seed) for t in texts],
                                                      config.shingle_words)[2])
            if sum(len(s) for s in signatures) >= args.index_articles:
                break
    sigs = np.concatenate(signatures)[: args.index_articles]
    mc = MatchConfig()
    print(f"band index: {len(sigs)} articles in batches of 1,000 ({mc.bands} bands of {mc.rows}, "
          f"{mc.bucket_limit} an article at most)")
    for compiled in (True, False):
        def fill(compiled: bool = compiled) -> tuple[int, int]:
            index = BandIndex(mc.bands, mc.rows, mc.bucket_limit)
            if compiled:
                index.compile()
            found = checksum = 0
            for start in range(0, len(sigs), 1000):
                for candidates in index.add_batch(np.arange(start, min(start + 1000, len(sigs))),
                                                  sigs[start : start + 1000]):
                    found += candidates.size
                    checksum = (checksum * 31 + int(candidates.sum())) % (1 << 61)
            return found, checksum

        seconds, (found, checksum) = _median_seconds(fill, args.repeats)
        print(f"  {'compiled table' if compiled else 'numpy runs':18} {seconds:8.2f} s, {found} candidates, "
              f"checksum {checksum}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
