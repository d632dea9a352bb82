"""Credits read from the body text, checked against the bylines of the labelled dev set.

    python benchmarks/credits.py [--eval-dir ../shared/eval]

The byline is held back from the body reader; the byline's own credit (read by the byline reader,
e.g. "الرياض - واس" -> spa) is the reference. Prints:

* precision: of the articles whose body yields a credit and whose byline is not empty, the share
  whose first body credit is the byline's credit (an agency key, or "generic" for وكالات);
* recall: of the articles whose byline credits an agency, the share whose body yields that credit;
* SPA canonical: of the dev stories (gold clusters) holding an item of the Saudi Press Agency's
  own outlet (``was``), the share where the detector made that item the canonical copy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict

from _shared import add_eval_dir, dev_folder

from dedup import Article, Detector
from dedup.dump import ReadReport, read_articles
from dedup.text.clean import clean
from dedup.text.credits import detect_byline_credit, detect_credits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_eval_dir(ap)
    ap.add_argument("--examples", type=int, default=0, help="print this many disagreements")
    args = ap.parse_args()
    dev = dev_folder(args.eval_dir)
    if dev is None:
        return 0
    articles = list(read_articles(dev / "items.jsonl", ReadReport(), ordered=True))
    found = agree = credited = recalled = 0
    wrong: Counter[tuple[str, str]] = Counter()
    examples = []
    for a in articles:
        reference = detect_byline_credit(a.byline)
        body = detect_credits(clean(a.text).with_sources)  # the byline is held back
        label = reference.label if reference else "-"
        if reference and reference.agency:
            credited += 1
            recalled += any(c.label == label for c in body)
        if body and body[0].agency and a.byline.strip():
            found += 1
            if body[0].label == label:
                agree += 1
            else:
                wrong[(body[0].label, label)] += 1
                examples.append((a.id, a.byline, body[0].where, body[0].text[:80]))
    print(f"{len(articles)} dev articles; {credited} with an agency credit in the byline")
    print(f"body credits with a byline to check against: {found}, agreeing: {agree}, "
          f"precision {agree / max(found, 1):.4f}")
    print(f"recall of byline credits from the body: {recalled}/{credited} = {recalled / max(credited, 1):.4f}")
    if wrong:
        print("disagreements (body, byline):", dict(wrong.most_common(8)))
    for example in examples[: args.examples]:
        print("  ", example)

    gold = {}
    with open(dev / "gold.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            gold[row["id"]] = row["cluster"]
    members = defaultdict(list)
    for a in articles:
        members[gold[a.id]].append(a)
    with Detector.in_memory() as detector:
        detector.add_many([_plain(a) for a in articles])
        canonical = {a: c for a, _, c in detector.assignments()}
    with_spa = [m for m in members.values() if len(m) > 1 and any(a.outlet == "was" for a in m)]
    hits = sum(1 for m in with_spa if any(canonical[a.id] == a.id and a.outlet == "was" for a in m))
    print(f"dev stories with an SPA (outlet was) item: {len(with_spa)}; the SPA item is canonical in {hits} "
          f"({hits / max(len(with_spa), 1):.4f})" + ("; this dev split has no item of outlet was" if not with_spa
                                                     else ""))
    return 0


def _plain(a: Article) -> Article:
    return a


if __name__ == "__main__":
    sys.exit(main())
