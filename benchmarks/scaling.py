"""Scaling: generated corpora of real dev texts with realistic copies, at several sizes, with the
plain datasketch peer beside us in the same run.

    python benchmarks/scaling.py [--sizes 10000,100000,1000000] [--peers datasketch,rensa-lsh-sh5,...]
                                 [--peer-python PEERS_VENV/bin/python] [--repeats 3]

For each size the generator takes dev articles as originals (their gold clusters kept) and adds
copies made the way outlets make them: a new headline line, page boilerplate, a cut to the first
half or two thirds, house spellings, a dateline credit, another article appended after
"إقرأ أيضاً:", and a publication time up to two days later. It writes the corpus and its gold
clusters to out/scaling/ (kept for the next run with the same seed), then reports for `dedup
scan` and each peer of ../shared/peers asked for (run with the interpreter of the venv they are
installed in, as ../shared/peers/README.md says) the wall time, docs/s, CPU seconds (the process
tree's, all cores), peak RSS (largest single process, and the process tree summed) and the
scorer's pairwise and B-cubed figures against the generated gold. With ``--repeats N`` every
tool runs N times, the tools taking turns (one run of each, then the next round), and the table
gives the median wall time (and the range); a line per size then gives the ratio of each
peer's median to ours. On a shared machine whose speed
drifts, taking turns keeps the ratio fair. Corpora come from a fixed seed: nothing generated is
committed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _shared import ROOT, add_eval_dir, dev_folder

_SPELLINGS = {"الأمريكي": "الأميركي", "أ": "ا", "إ": "ا", "ى ": "ي ", "ة ": "ه "}
_HEADLINES = ["عاجل | تطورات جديدة", "بالفيديو: تفاصيل الخبر", "مصادر: ما لم يعلن بعد", "شاهد: ردود فعل واسعة"]
_CREDITS = ["الرياض - واس:", "(أ ف ب) -", "موسكو- وكالات –", "واشنطن (رويترز) -", "جدة - واس"]


def copy_of(text: str, other: str, rnd: random.Random) -> str:
    """One outlet's copy of ``text``: two or three of the usual edits."""
    for edit in rnd.sample(["headline", "boilerplate", "cut", "spelling", "credit", "appended"], rnd.randint(2, 3)):
        if edit == "headline":
            text = f"{rnd.choice(_HEADLINES)}\n{text}"
        elif edit == "boilerplate":
            text = f"الرئيسية\nأخبار\nمحليات\n{text}\nشارك الخبر\nجميع الحقوق محفوظة © 2015"
        elif edit == "cut":
            words = text.split()
            text = " ".join(words[: max(20, int(len(words) * rnd.choice([0.5, 0.67])))])
        elif edit == "spelling":
            for src, dst in _SPELLINGS.items():
                text = text.replace(src, dst)
        elif edit == "credit":
            text = f"{rnd.choice(_CREDITS)} {text}"
        elif edit == "appended" and other.split():
            text = f"{text}\nإقرأ أيضاً:\n{other}"
    return text


def generate(items: list[dict[str, str]], gold: dict[str, str], size: int, seed: int, out: Path) -> tuple[Path, Path]:
    rnd = random.Random(seed)
    corpus = out / f"corpus_{size}.jsonl"
    truth = out / f"gold_{size}.jsonl"
    with open(corpus, "w", encoding="utf-8") as fc, open(truth, "w", encoding="utf-8") as fg:
        written = 0
        round_ = 0
        while written < size:
            for item in items:
                if written >= size:
                    break
                if not (item.get("text") or "").split():
                    continue
                base = dict(item, id=f"r{round_}-{item['id']}")
                cluster = f"r{round_}-{gold[item['id']]}"
                when = dt.datetime.fromisoformat(item["published"]) if item.get("published") else None
                if round_:  # later rounds are the same texts a month on: other stories, same wording
                    when = when + dt.timedelta(days=30 * round_) if when else None
                    base["published"] = when.strftime("%Y-%m-%d %H:%M:%S") if when else ""
                rows = [base]
                for k in range(min(rnd.choice([0, 0, 1, 1, 2, 3]), size - written - 1)):
                    other = rnd.choice(items).get("text") or ""
                    later = when + dt.timedelta(minutes=rnd.randint(5, 2880)) if when else None
                    rows.append(dict(base, id=f"{base['id']}-c{k}", text=copy_of(base["text"], other, rnd),
                                     outlet=f"copier{rnd.randint(0, 60)}",
                                     published=later.strftime("%Y-%m-%d %H:%M:%S") if later else ""))
                for row in rows:
                    fc.write(json.dumps(row, ensure_ascii=False) + "\n")
                    fg.write(json.dumps({"id": row["id"], "cluster": cluster}) + "\n")
                written += len(rows)
            round_ += 1
    return corpus, truth


def _tree(pid: int, cpu: dict[int, float]) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MiB; the CPU
    seconds (user and system) each descendant has used so far go into ``cpu`` by process id."""
    total, stack, ticks = 0, [pid], os.sysconf("SC_CLK_TCK")
    while stack:
        p = stack.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * resource.getpagesize()
            if p != pid:  # (the process that runs the command, not the command)
                fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
                cpu[p] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total / 2**20


def measure(command: list[str]) -> tuple[float, float, float, float]:
    """Wall seconds, peak RSS of the largest single process, peak RSS summed over the process
    tree, and CPU seconds summed over the process tree (all cores; sampled every 0.1 s, so
    a process's last tenth of a second may be missed), of one run of ``command``."""
    code = ("import resource, subprocess, sys, time\nt = time.perf_counter()\n"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, *command], stdout=subprocess.PIPE, text=True)
    tree = 0.0
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        tree = max(tree, _tree(proc.pid, cpu))
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, command)
    wall, rss = out.split()
    return float(wall), int(rss) / 1024, tree, sum(cpu.values())


# The peers of ../shared/peers, each with the settings its README reports (see there).
PEERS = {
    "datasketch": ["run_datasketch.py"],
    "rensa-lsh-sh5": ["run_rensa.py", "--mode", "lsh", "--tokens", "shingles", "--ngram", "5", "--threshold", "0.5"],
    "rensa-readme": ["run_rensa.py"],
    "text-dedup-matched": ["run_text_dedup.py", "--preset", "matched"],
    "datatrove": ["run_datatrove.py"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_eval_dir(ap)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--peers", default="",
                    help=f"comma-separated peers of ../shared/peers to run beside us: {', '.join(PEERS)}")
    ap.add_argument("--peer", action="store_true", help="same as --peers datasketch")
    ap.add_argument("--peer-python", default=sys.executable,
                    help="interpreter of the venv the peers are installed in (see ../shared/peers/README.md)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each tool, taking turns; medians reported")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "scaling")
    args = ap.parse_args()
    dev = dev_folder(args.eval_dir)
    if dev is None:
        return 0
    with open(dev / "items.jsonl", encoding="utf-8") as fh:
        items = [json.loads(line) for line in fh if line.strip()]
    with open(dev / "gold.jsonl", encoding="utf-8") as fh:
        gold = {r["id"]: r["cluster"] for r in map(json.loads, fh)}
    args.out.mkdir(parents=True, exist_ok=True)
    tools = {"dedup scan": lambda src, dst: [sys.executable, "-m", "dedup.cli", "scan", str(src), "-o", str(dst), "-q"]}
    peers = [p for p in args.peers.split(",") if p] + (["datasketch"] if args.peer else [])
    for name in dict.fromkeys(peers):
        if name not in PEERS:
            ap.error(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
        script, *options = PEERS[name]
        runner = args.eval_dir.parent / "peers" / script
        if not runner.exists():
            print(f"peer {name}: {runner} not found, left out")
            continue
        tools[name] = functools.partial(_peer_command, args.peer_python, runner, options)
    print(f"{'size':>8} {'tool':19} {'wall s':>8} {'docs/s':>8} {'cpu s':>7} {'max MiB':>8} {'tree MiB':>8} "
          f"{'pair P':>7} {'pair R':>7} {'pair F1':>7} {'B3 F1':>7}")
    ours_at: dict[int, float] = {}  # our median wall at each size, for the growth curve
    for size in (int(s) for s in args.sizes.split(",")):
        corpus, truth = args.out / f"corpus_{size}.jsonl", args.out / f"gold_{size}.jsonl"
        if not (corpus.exists() and truth.exists() and _generated_with(args.out, size, args.seed)):
            corpus, truth = generate(items, gold, size, args.seed, args.out)
            (args.out / f"seed_{size}.txt").write_text(str(args.seed))
        runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in tools}
        failed: set[str] = set()
        for _ in range(max(args.repeats, 1)):
            for name, command in tools.items():
                if name in failed:
                    continue
                try:
                    runs[name].append(measure(command(corpus, args.out / f"pred_{size}_{name.split()[0]}.jsonl")))
                except subprocess.CalledProcessError as exc:
                    print(f"{size:>8} {name:19} failed (exit {exc.returncode}): run {' '.join(exc.cmd)} to see why",
                          flush=True)
                    failed.add(name)
        medians: dict[str, float] = {}
        for name, measured in runs.items():
            if not measured or name in failed:
                continue
            pred = args.out / f"pred_{size}_{name.split()[0]}.jsonl"
            score = json.loads(subprocess.run([sys.executable, str(args.eval_dir / "score.py"), str(truth), str(pred),
                                               "--json"], check=True, capture_output=True, text=True).stdout)
            walls = [m[0] for m in measured]
            wall = medians[name] = statistics.median(walls)
            spread = f"  ({min(walls):.1f}-{max(walls):.1f} s, {len(walls)} runs)" if len(walls) > 1 else ""
            cpu = statistics.median(m[3] for m in measured)
            print(f"{size:>8} {name:19} {wall:8.1f} {size / wall:8.0f} {cpu:7.1f} {max(m[1] for m in measured):8.0f} "
                  f"{max(m[2] for m in measured):8.0f} {score['pairwise_precision']:7.3f} "
                  f"{score['pairwise_recall']:7.3f} {score['pairwise_f1']:7.3f} {score['bcubed_f1']:7.3f}{spread}",
                  flush=True)
        ours = medians.get("dedup scan")
        if ours:
            ours_at[size] = ours
        if ours and len(medians) > 1:
            print(f"{size:>8} median wall of each peer / ours: "
                  + ", ".join(f"{name} {wall / ours:.2f}x" for name, wall in medians.items() if name != "dedup scan"),
                  flush=True)
    grown = sorted(ours_at)
    for small, large in itertools.pairwise(grown):  # linear growth: the time grows as the articles do
        print(f"dedup scan from {small:,} to {large:,} articles ({large / small:.3g}x as many): "
              f"{ours_at[large] / ours_at[small]:.2f}x the time")
    print(f"({time.strftime('%Y-%m-%d %H:%M')}; cpu s: median CPU seconds of the process tree, all cores; max MiB: "
          f"largest single process, tree MiB: the process tree summed, sampled every 0.1 s; generated files in "
          f"{args.out})")
    return 0


def _peer_command(python: str, runner: Path, options: list[str], src: Path, dst: Path) -> list[str]:
    return [python, str(runner), str(src), str(dst), *options]


def _generated_with(folder: Path, size: int, seed: int) -> bool:
    marker = folder / f"seed_{size}.txt"
    return marker.exists() and marker.read_text().strip() == str(seed)


if __name__ == "__main__":
    sys.exit(main())
