"""Does page noise fool the matcher? The dev set scored clean and wrapped in page furniture.

    python benchmarks/page_noise.py [--eval-dir ../shared/eval] [--seed 7]

Every dev article is wrapped the way scraped pages wrap text (the kinds seen in the five real
pages of ../shared/corpus/pages): a per-outlet header with a date line, a navigation menu and a
login box; in-body "اقرأ أيضاً" link blocks with another article's headline; a source line, a tag
line and share counts; a footer with related-articles bullets and a comment form; and, for one
article in four, a whole other dev article appended after "إقرأ أيضاً:". The script writes the
noisy dump to out/page_noise/, scans both dumps and prints the scorer's story figures side by side.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

from _shared import ROOT, add_eval_dir, dev_folder

_MENU = ["الرئيسية", "أخبار", "محليات", "اقتصاد", "رياضة", "ثقافة وفنون", "منوعات", "مقالات", "تقارير",
         "الطقس", "وظائف", "فيديو", "صور", "تلفزيون", "المنتديات", "Oman News", "English"]
_LOGIN = ["Login", "Welcome Back!", "Login to your account below", "Forgotten Password?",
          "Retrieve your password", "Log In", "No Result", "View All Result"]
_FOOTER = ["• About", "• Advertise", "• Privacy & Policy", "• Contact", "Whatsapp : +96899060010",
           "You cannot copy content of this page"]
_DAYS = ["الأحد", "الإثنين", "الثلاثاء", "الأربعاء", "الخميس", "الجمعة", "السبت"]


def wrap(article: dict[str, str], other: dict[str, str], headline: str, rnd: random.Random, appended_share: float,
         site: dict[str, list[str]]) -> str:
    """One article as a scraped page: furniture around it, a link block inside, maybe an appended one."""
    body = article.get("text") or ""
    lines = [line for line in body.splitlines() if line.strip()] or [""]
    if len(lines) == 1 and len(lines[0]) > 200:
        cut = lines[0].find(". ", len(lines[0]) // 2)
        if cut > 0:
            lines = [lines[0][: cut + 1], lines[0][cut + 2 :]]
    at = rnd.randint(1, max(1, len(lines) - 1)) if len(lines) > 1 else 1
    lines[at:at] = ["اقرأ أيضاً", headline]
    header = [f"{rnd.choice(_DAYS)}, يوليو {rnd.randint(1, 28)}, 2015", *site["name"], *site["menu"],
              *rnd.sample(_LOGIN, 3), article.get("title") or ""]
    tail = [f"المصدر: {site['name'][0]}", "كلمات دلالية: " + " ".join((article.get("title") or "").split()[:6]),
            f"Share{rnd.randint(1, 900)}Tweet{rnd.randint(1, 300)}"]
    appended: list[str] = []
    if rnd.random() < appended_share and (other.get("text") or "").split():
        appended = ["إقرأ أيضاً:", other.get("title") or "", other["text"]]
    footer = ["مقالات مشابهة", *[f"  • {h}" for h in site["related"]], "اترك تعليقاً", *_FOOTER,
              "Copyright © 2015"]
    return "\n".join([*header, *lines, *tail, *appended, *footer])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_eval_dir(ap)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "page_noise")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--appended", type=float, default=0.25, help="share of pages with another article appended")
    args = ap.parse_args()
    dev = dev_folder(args.eval_dir)
    if dev is None:
        return 0
    rnd = random.Random(args.seed)
    with open(dev / "items.jsonl", encoding="utf-8") as fh:
        items = [json.loads(line) for line in fh if line.strip()]
    titles = [i.get("title") or "" for i in items if i.get("title")]
    sites = {}
    for outlet in sorted({i.get("outlet") or "" for i in items}):
        sites[outlet] = {"name": [f"صحيفة {outlet}"], "menu": [f"  • {m}" for m in rnd.sample(_MENU, 8)],
                         "related": rnd.sample(titles, 4)}
    args.out.mkdir(parents=True, exist_ok=True)
    noisy = args.out / "dev_noisy.jsonl"
    with open(noisy, "w", encoding="utf-8") as fh:
        for item in items:
            site = sites[item.get("outlet") or ""]
            page = wrap(item, rnd.choice(items), rnd.choice(titles), rnd, args.appended, site)
            fh.write(json.dumps({**item, "text": page}, ensure_ascii=False) + "\n")
    results = {}
    for name, source in (("clean", dev / "items.jsonl"), ("page noise", noisy)):
        pred = args.out / f"pred_{name.replace(' ', '_')}.jsonl"
        subprocess.run([sys.executable, "-m", "dedup.cli", "scan", str(source), "-o", str(pred), "-q"], check=True)
        out = subprocess.run([sys.executable, str(args.eval_dir / "score.py"), str(dev / "gold.jsonl"), str(pred),
                              "--pairs", str(dev / "pairs.jsonl"), "--json"], check=True, capture_output=True,
                             text=True).stdout
        results[name] = json.loads(out)
    keys = ("story_precision", "story_recall", "story_f1", "bcubed_f1")
    print(f"{'':12}" + "".join(f"{k:>17}" for k in keys))
    for name, r in results.items():
        print(f"{name:12}" + "".join(f"{r[k]:17.4f}" for k in keys))
    drop = results["clean"]["story_f1"] - results["page noise"]["story_f1"]
    print(f"story F1 lost to page noise: {drop:.4f} (target: within 0.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
