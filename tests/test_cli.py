from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any
from unittest import mock

import polars as pl
import pytest
from click.testing import CliRunner
from edits import boilerplate, first_half, house_spelling, new_headline
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dedup import Article, Detector
from dedup.cli import main
from dedup.detector import content_hash
from dedup.dump import Columns, ReadReport, time_order_key


def corpus(stories: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for n, (key, text) in enumerate(stories.items()):
        day = f"2015-07-2{n % 3 + 1}"
        rows.append({"id": key, "text": text, "outlet": "spa", "published": f"{day} 09:00:00"})
        rows.append({"id": f"{key}-h", "text": new_headline(text), "outlet": "okaz",
                     "published": f"{day} 10:00:00"})
        rows.append({"id": f"{key}-c", "text": first_half(text), "outlet": "sabq", "published": f"{day} 08:30:00"})
        rows.append({"id": f"{key}-s", "text": house_spelling(boilerplate(text)), "outlet": "alyaum",
                     "published": f"{day} 11:00:00", "byline": "الرياض - واس"})
    rows.append({"id": "roundup", "text": stories["weather"] + "\n" + stories["tech"],
                 "published": "2015-07-23 12:00:00"})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def scan(tmp_path: Path, rows: list[dict[str, str]], *args: str) -> tuple[int, str, list[dict[str, object]]]:
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(out), *args])
    items = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    return result.exit_code, result.output, items


def clusters(items: list[dict[str, object]]) -> set[frozenset[object]]:
    groups: dict[object, set[object]] = {}
    for r in items:
        groups.setdefault(r["cluster"], set()).add(r["id"])
    return {frozenset(g) for g in groups.values()}


def test_scan_groups_copies_and_writes_scorer_readable_rows(tmp_path: Path, stories: dict[str, str]) -> None:
    code, output, items = scan(tmp_path, corpus(stories))
    assert code == 0, output
    assert {"id", "cluster", "canonical_id", "is_canonical"} <= set(items[0])
    groups = clusters(items)
    for key in stories:
        assert frozenset({key, f"{key}-h", f"{key}-c", f"{key}-s"}) in groups
    assert frozenset({"roundup"}) in groups
    by_id = {r["id"]: r for r in items}
    # Outlet "spa" is the Saudi Press Agency's own (the agency registry knows its outlets and sites):
    # its item beats the earlier cut copy and the SPA-credited one.
    assert by_id["summit-c"]["canonical_id"] == "summit"
    assert "stories with copies" in output


def test_scan_writes_stories_with_provenance(tmp_path: Path, stories: dict[str, str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", corpus(stories))
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(tmp_path / "items.parquet"),
                                       "--clusters", str(tmp_path / "stories.jsonl")])
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(tmp_path / "items.parquet")
    assert table.height == len(corpus(stories))
    stories_out = [json.loads(x) for x in (tmp_path / "stories.jsonl").read_text(encoding="utf-8").splitlines()]
    big = [s for s in stories_out if s["size"] == 4]
    assert len(big) == len(stories)
    assert all(len(s["provenance"]) == 4 and s["first_published"] <= s["last_published"] for s in big)


@settings(max_examples=8, deadline=None)
@given(st.randoms(use_true_random=False))
def test_clusters_do_not_depend_on_row_order(tmp_path_factory, stories, rnd) -> None:  # type: ignore[no-untyped-def]
    rows = corpus(stories)
    _, _, reference = scan(tmp_path_factory.mktemp("a"), rows)
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    _, _, other = scan(tmp_path_factory.mktemp("b"), shuffled)
    assert {(r["id"], r["cluster"], r["canonical_id"]) for r in reference} == {
        (r["id"], r["cluster"], r["canonical_id"]) for r in other
    }


def test_library_and_cli_give_the_same_clusters(tmp_path: Path, stories: dict[str, str]) -> None:
    rows = corpus(stories)
    random.Random(3).shuffle(rows)
    _, _, items = scan(tmp_path, rows)
    articles = sorted((Article(**r) for r in rows), key=time_order_key)  # type: ignore[arg-type]
    with Detector.in_memory() as d:
        decisions = d.add_many(articles)
    assert {(x.article_id, x.story_id) for x in decisions} == {(r["id"], r["cluster"]) for r in items}


@pytest.mark.parametrize("name, method", [("t.jsonl", "write_ndjson"), ("t.parquet", "write_ipc")])
def test_a_batch_that_fails_to_be_written_leaves_no_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          name: str, method: str) -> None:
    """Batches are written in a thread while the next is made: the error of one that fails comes
    out of write_columns, and neither the table nor a temporary file is left."""
    from dedup.dump import write_columns

    written = getattr(pl.DataFrame, method)
    calls: list[int] = []

    def failing(self: pl.DataFrame, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return written(self, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, method, failing)
    batches = ({"id": [f"{b}-{i}" for i in range(3)]} for b in range(4))
    with pytest.raises(OSError, match="disk full"):
        write_columns(batches, tmp_path / name, {"id": pl.String})
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_malformed_json_line_names_file_and_line(tmp_path: Path, stories: dict[str, str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": stories["tech"]}) + "\n{broken\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code != 0
    assert f"{src}:2: malformed JSON" in result.output
    assert not (tmp_path / "out.jsonl").exists()
    src.write_text('{"id": "a", "text": "cut short\n', encoding="utf-8")  # the column says where
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(tmp_path / "out.jsonl")])
    assert f"{src}:1: malformed JSON: Unterminated string starting at column 21" in result.output


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00"])
def test_a_lone_surrogate_escape_is_a_bad_line_not_a_failed_write(tmp_path: Path, stories: dict[str, str],
                                                                  escape: str) -> None:
    # JSON may escape half a surrogate pair; no output can hold it. Found while the scan wrote its
    # items, it lost the whole run: it is refused where it is read, naming the line.
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "text": stories["tech"]}) + "\n"
                   + '{"id": "x' + escape + '", "text": "نص"}\n'
                   + '{"id": "emoji", "text": "نص \\ud83d\\ude00"}\n', encoding="utf-8")
    for out in ("o.jsonl", "o.csv", "o.parquet"):
        result = CliRunner().invoke(main, ["scan", str(src), "-o", str(tmp_path / out)])
        assert result.exit_code != 0 and f"{src}:2: 'id' holds a lone surrogate ({escape})" in result.output
        assert not (tmp_path / out).exists()
        result = CliRunner().invoke(main, ["scan", str(src), "-o", str(tmp_path / out), "--skip-bad"])
        assert result.exit_code == 0, result.output
        assert f"skipped: {src}:2:" in result.output
    kept = pl.read_parquet(tmp_path / "o.parquet")["id"].to_list()
    assert sorted(kept) == ["a", "emoji"]  # a whole pair is a character like any other


@pytest.mark.parametrize(("written", "lone"), [
    (rb'"\ud83d\ude00"', False), (rb'"\uD83D\uDE00"', False), (rb'"\u0627"', False),
    (rb'"\ud800"', True), (rb'"x\udc00"', True), (rb'"\ud800\ud800"', True), (rb'"\ud83d\ude00\ude00"', True),
    (rb'"\\ud800"', False),  # a backslash, then letters
    (rb'"\\ud800\udc00"', True),  # ... then an escaped low half alone
    (rb'"\\\ud800"', True),  # a backslash, then an escaped high half alone
    (rb'"\ud800\\udc00"', True),  # a high half, then a backslash and letters
])
def test_a_lone_escaped_surrogate_is_found_and_an_escaped_backslash_is_not_one(written: bytes, lone: bool) -> None:
    from dedup.dump import _lone_surrogate

    assert _lone_surrogate(written) is lone
    assert lone == any(0xD800 <= ord(c) <= 0xDFFF for c in json.loads(written))  # what JSON itself reads


def test_skip_bad_reports_and_keeps_the_good_rows(tmp_path: Path, stories: dict[str, str]) -> None:
    src = tmp_path / "in.jsonl"
    good = json.dumps({"id": "a", "text": stories["tech"]}).encode()
    src.write_bytes(good + b"\n{broken\n" + b'{"id": "u", "text": "\xff\xfe"}\n' + b'{"text": "no id"}\n')
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(tmp_path / "out.jsonl"), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert f"{src}:2: malformed JSON" in result.output
    assert f"{src}:3: not valid UTF-8" in result.output
    assert f"{src}:4: missing 'id'" in result.output
    assert [json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()] == ["a"]


def test_duplicate_ids_repeated_rows_are_dropped_changed_rows_refused(tmp_path: Path, stories: dict[str, str]) -> None:
    row = {"id": "a", "text": stories["tech"]}
    code, output, items = scan(tmp_path, [row, row])
    assert code == 0 and len(items) == 1 and "repeated ids dropped 1" in output
    code, output, _ = scan(tmp_path, [row, {"id": "a", "text": stories["health"]}])
    assert code != 0 and "already used on line 1" in output


def test_state_folder_keeps_stories_across_scans(tmp_path: Path, stories: dict[str, str]) -> None:
    state = tmp_path / "state"
    first = write_jsonl(tmp_path / "one.jsonl", [{"id": "a", "text": stories["summit"]}])
    second = write_jsonl(tmp_path / "two.jsonl", [{"id": "b", "text": new_headline(stories["summit"])}])
    runner = CliRunner()
    for src, out in ((first, "1.jsonl"), (second, "2.jsonl")):
        result = runner.invoke(main, ["scan", str(src), "-o", str(tmp_path / out), "--state", str(state)])
        assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "2.jsonl").read_text(encoding="utf-8"))
    assert row["cluster"] == "a"
    shown = runner.invoke(main, ["show", "b", "--state", str(state)])
    assert shown.exit_code == 0 and "story a: 2 carriers" in shown.output


def test_a_scan_with_a_state_lists_the_dump_s_articles_only_those_met_before_too(
        tmp_path: Path, stories: dict[str, str]) -> None:
    state = tmp_path / "state"
    runner = CliRunner()
    first = write_jsonl(tmp_path / "one.jsonl", [{"id": "a", "text": stories["summit"]},
                                                 {"id": "z", "text": stories["tech"]}])
    again = write_jsonl(tmp_path / "two.jsonl", [{"id": "c", "text": new_headline(stories["summit"])},
                                                 {"id": "a", "text": stories["summit"]}])
    for src, out in ((first, "1.jsonl"), (again, "2.jsonl")):
        result = runner.invoke(main, ["scan", str(src), "-o", str(tmp_path / out), "--state", str(state)])
        assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "2.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["cluster"]) for r in rows] == [("a", "a"), ("c", "a")]
    assert rows[0]["canonical_id"] == rows[1]["canonical_id"] in ("a", "c")


def test_every_command_has_help() -> None:
    for command in ([], ["scan"], ["show"]):
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code != 0 and "no such file" in result.output


def test_output_folders_are_created(tmp_path: Path, stories: dict[str, str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": stories["tech"]}])
    out = tmp_path / "new" / "dir" / "items.csv"
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert pl.read_csv(out)["id"].to_list() == ["a"]


def test_one_and_two_workers_write_identical_results(tmp_path: Path, stories: dict[str, str]) -> None:
    rows = corpus(stories)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    code1, _, one = scan(tmp_path / "one", rows, "-j", "1")
    code2, _, two = scan(tmp_path / "two", rows, "-j", "2", "--batch-size", "3")
    assert code1 == code2 == 0
    assert one == two
    assert len(clusters(one)) < len(rows)


def test_a_dump_large_enough_for_compiled_matching_gets_the_same_results(
        tmp_path: Path, stories: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    rows = corpus(stories)
    (tmp_path / "plain").mkdir()
    (tmp_path / "compiled").mkdir()
    code1, _, plain = scan(tmp_path / "plain", rows, "-j", "1")
    calls: list[Detector] = []
    real_compile = Detector.compile

    def compile_counted(self: Detector) -> None:
        calls.append(self)
        real_compile(self)

    monkeypatch.setattr(Detector, "COMPILE_FROM", len(rows))  # the dump is "large" from here on
    monkeypatch.setattr(Detector, "compile", compile_counted)
    code2, _, fast = scan(tmp_path / "compiled", rows, "-j", "1")
    assert code1 == code2 == 0 and len(calls) == 1  # compiled up front, once
    assert plain == fast


def test_jsonl_gzip_zstd_csv_and_parquet_dumps_and_split_files_give_identical_results(
    tmp_path: Path, stories: dict[str, str]
) -> None:
    import gzip

    import zstandard

    rows = [{**r, "outlet_is_agency": r.get("outlet") == "spa"} for r in corpus(stories)]
    frame = pl.DataFrame(rows)
    dumps = {
        "jsonl": write_jsonl(tmp_path / "d.jsonl", rows),
        "csv": tmp_path / "d.csv",
        "parquet": tmp_path / "d.parquet",
        "gz": tmp_path / "d.jsonl.gz",
    }
    frame.write_csv(dumps["csv"])
    frame.write_parquet(dumps["parquet"])
    dumps["gz"].write_bytes(gzip.compress(dumps["jsonl"].read_bytes()))
    (tmp_path / "d.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(dumps["jsonl"].read_bytes()))
    parts = tmp_path / "parts"
    parts.mkdir()
    for n in range(3):  # the same rows split over three files, read by a glob
        write_jsonl(parts / f"p{n}.jsonl", rows[n::3])
    inputs = {kind: [str(path)] for kind, path in dumps.items()}
    inputs["zst"] = [str(tmp_path / "d.jsonl.zst")]
    inputs["glob"] = [str(parts / "*.jsonl")]
    results = {}
    for kind, paths in inputs.items():
        out = tmp_path / f"{kind}.out.jsonl"
        result = CliRunner().invoke(main, ["scan", *paths, "-o", str(out), "-q"])
        assert result.exit_code == 0, result.output
        results[kind] = out.read_text(encoding="utf-8")
    assert len(set(results.values())) == 1, {k: len(v) for k, v in results.items()}


def test_a_glob_matching_nothing_and_an_id_in_two_files_are_clear_errors(tmp_path: Path,
                                                                         stories: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["scan", str(tmp_path / "none*.jsonl"), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code != 0 and "matches no file" in result.output
    one = write_jsonl(tmp_path / "one.jsonl", [{"id": "a", "text": stories["tech"]}])
    two = write_jsonl(tmp_path / "two.jsonl", [{"id": "a", "text": stories["health"]}])
    result = CliRunner().invoke(main, ["scan", str(one), str(two), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code != 0 and "also in" in result.output and str(one) in result.output


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupting_a_scan_leaves_no_partial_output(tmp_path: Path, stories: dict[str, str], signame: str) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    # More rows than are sorted in memory (RUN_ROWS): the scan writes sorted runs to a temporary
    # folder, and adding them takes seconds more after that.
    rows = [{"id": f"{k}-{n}", "text": f"{t} رقم {n}", "published": f"2015-07-2{n % 9 + 1} 08:00:00"}
            for n in range(12_000) for k, t in stories.items()]
    src = write_jsonl(tmp_path / "big.jsonl", rows)
    out = tmp_path / "out" / "items.parquet"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "dedup.cli", "scan", str(src), "-o", str(out), "-j", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)})
    # Interrupted once it is under way (its temporary folder is there), however fast the machine.
    deadline = time.monotonic() + 60
    while not any(scratch.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(getattr(signal, signame))
    out_text, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and "items," not in out_text
    assert proc.returncode != 0, "the scan finished before it was interrupted: make the input larger"
    assert not out.exists()
    assert not list(out.parent.glob("*")) if out.parent.exists() else True
    assert list(scratch.iterdir()) == []  # no temporary file left


def test_the_command_ends_at_once_with_everything_written_and_nothing_left_behind(tmp_path: Path,
                                                                                  stories: dict[str, str]) -> None:
    # The command ends its process without freeing its objects (dedup.cli._exit_now): what it
    # wrote must be whole, its summary printed, its workers and temporary files gone, nothing warned.
    import os
    import subprocess
    import sys

    src = write_jsonl(tmp_path / "in.jsonl", corpus(stories))
    out, stories_out, scratch = tmp_path / "items.jsonl", tmp_path / "stories.parquet", tmp_path / "scratch"
    scratch.mkdir()
    done = subprocess.run([sys.executable, "-m", "dedup.cli", "scan", str(src), "-o", str(out), "--clusters",
                           str(stories_out), "-j", "2"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert f"{len(corpus(stories))} items" in done.stdout
    items = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(items) == len(corpus(stories))
    assert pl.read_parquet(stories_out)["size"].sum() == len(items)
    assert list(scratch.iterdir()) == []
    assert {p.name for p in tmp_path.iterdir()} == {"in.jsonl", "items.jsonl", "stories.parquet", "scratch"}


@pytest.mark.parametrize(("signame", "raised"), [("SIGTERM", SystemExit), ("SIGINT", KeyboardInterrupt)])
def test_a_signal_landing_in_numba_code_is_sent_again_once_out_of_it(signame: str, raised: type) -> None:
    # Raised inside numba (compiling a kernel, or a kernel calling back into Python), the
    # exception would be swallowed or garbled: it must come where dedup's own code runs.
    import os
    import signal
    import time

    import numba

    from dedup.cli import _signals_unwind

    inside_numba = compile(f"import os, signal\nos.kill(os.getpid(), signal.{signame})\n"
                           "for _ in range(10_000): pass\ndone = True\n",
                           os.path.join(os.path.dirname(numba.__file__), "compiling.py"), "exec")
    scope: dict[str, object] = {}
    with pytest.raises(raised) as stopped, _signals_unwind():
        exec(inside_numba, scope)  # the signal lands here and is not raised here
        assert scope["done"]
        time.sleep(5)  # sent again 50 ms later: raised here
    assert scope["done"] and (raised is KeyboardInterrupt or stopped.value.code == 128 + signal.SIGTERM)


def test_renamed_columns_are_mapped_by_options(tmp_path: Path, stories: dict[str, str]) -> None:
    rows = corpus(stories)
    pl.DataFrame([{"doc": r["id"], "body": r["text"], "date": r["published"]} for r in rows]).write_csv(
        tmp_path / "d.csv")
    missing = CliRunner().invoke(main, ["scan", str(tmp_path / "d.csv"), "-o", str(tmp_path / "o.jsonl")])
    assert missing.exit_code != 0
    assert "d.csv: no column 'id'" in missing.output and "--id-col" in missing.output
    ok = CliRunner().invoke(main, ["scan", str(tmp_path / "d.csv"), "-o", str(tmp_path / "o.jsonl"),
                                   "--id-col", "doc", "--text-col", "body", "--published-col", "date"])
    assert ok.exit_code == 0, ok.output
    _, _, reference = scan(tmp_path, [{"id": r["id"], "text": r["text"], "published": r["published"]} for r in rows])
    mapped = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    assert clusters(mapped) == clusters(reference)


def test_bad_dumps_name_the_file_and_the_fix(tmp_path: Path, stories: dict[str, str]) -> None:
    corrupt = tmp_path / "bad.jsonl.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate")
    wrong = tmp_path / "wrong.parquet"
    pl.DataFrame({"id": ["a"], "text": [[1, 2]]}).write_parquet(wrong)
    for path, expected in ((corrupt, "bad.jsonl.gz:1: the compressed file is corrupt"),
                           (wrong, "wrong.parquet: column 'text' (text) has type List")):
        result = CliRunner().invoke(main, ["scan", str(path), "-o", str(tmp_path / "o.jsonl")])
        assert result.exit_code != 0
        assert expected in result.output
        assert not (tmp_path / "o.jsonl").exists()
    bad_row = tmp_path / "rows.csv"
    pl.DataFrame({"id": ["a", None, "c"], "text": [stories["tech"], "x", stories["health"]]}).write_csv(bad_row)
    strict = CliRunner().invoke(main, ["scan", str(bad_row), "-o", str(tmp_path / "o.jsonl")])
    assert strict.exit_code != 0 and "rows.csv:3: missing 'id'" in strict.output
    lenient = CliRunner().invoke(main, ["scan", str(bad_row), "-o", str(tmp_path / "o.jsonl"), "--skip-bad"])
    assert lenient.exit_code == 0 and "skipped: " in lenient.output
    assert len((tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()) == 2


@settings(deadline=None, max_examples=30)
@given(st.lists(st.tuples(st.sampled_from(["b", "a", "ب", "١٢", "a b", "Z"]),
                          st.sampled_from([None, "", "2015-07-21 08:00:00", "2015-07-21T08:00:00+03:00",
                                           "2015-07-20 23:59:59", "٢٠١٥"])),
                min_size=1, max_size=12, unique_by=lambda t: t[0] + repr(t[1])),
       st.randoms())
def test_fast_and_checking_jsonl_readers_agree_on_articles_and_order(rows, rnd) -> None:  # type: ignore[no-untyped-def]
    import tempfile

    from dedup.dump import ReadReport, _jsonl_block_checked, _jsonl_block_polars, _unique, read_articles

    objs = []
    for i, (article_id, published) in enumerate(rows):
        obj: dict[str, object] = {"id": f"{article_id}{i}", "text": f"نص {i}"}
        if published is not None:
            obj["published"] = published
        objs.append(obj)
    rnd.shuffle(objs)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(Path(tmp) / "in.jsonl", objs)  # type: ignore[arg-type]
        data = path.read_bytes()
        assert _jsonl_block_polars(data, str(path), 1, Columns()) is not None  # the fast path is the one tested
        fast = list(read_articles(path, ReadReport(), ordered=True))
        checked = sorted(_unique(_jsonl_block_checked(data, str(path), 1, Columns()), str(path), ReadReport(), False,
                                 "line"), key=time_order_key)
    assert fast == checked


_RAW_VALUES = {  # JSON values as written in a dump, for any field
    "id": ['"a"', '"ب"', '""', "7", "-3", "123456789012345678901234567890", "5.5", "1e3", "true", "null", '[1]'],
    "text": ['"نص"', '""', "null", "5", '["x"]', '{"a": 1}', '"x\\ny"', '"x\\ud800y"', '"\\ud83d\\ude00"',
             '"\\\\ud800\\udc00"', "[]", "{ }", '[{"b": [2]}]', "-1.5e-7"],
    # Strings that read as polars writes other values, or nearly: the block is then searched.
    "title": ['"عنوان"', "null", "2015", "false", '"431"', '"{آية}"', '"[صور] عنوان"', '"true"', '{"a": null}'],
    "published": ['"2015-07-21 08:00:00"', '""', "null", "20150721"],
    "outlet_is_agency": ["true", "false", "null", '"yes"', "1"],
}


@settings(deadline=None, max_examples=200)
@given(st.lists(st.dictionaries(st.sampled_from(list(_RAW_VALUES)), st.just(0), min_size=1).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.sampled_from(_RAW_VALUES[k]) for k in keys})), min_size=1, max_size=6))
# Both went wrong once: a fraction among string ids became "1000" (Python writes 1000.0), and a
# lone surrogate escape U+0000.
@example([{"id": '"a"'}, {"id": "1e3"}])
@example([{"id": '"a"', "text": '"x\\ud800y"'}])
# A backslash, then the letters "ud800", then a lone escaped low half: the letters are no escape.
@example([{"id": '"a"', "text": '"\\\\ud800\\udc00"'}])
# A list or an object alone where a string belongs (polars writes them as their JSON text).
@example([{"id": '"a"', "text": '["x"]'}])
@example([{"id": '"a"', "title": '{"a": null}'}, {"id": '"b"', "text": "[]"}])
def test_the_fast_jsonl_reader_answers_only_what_the_checking_reader_answers(lines: list[dict[str, str]]) -> None:
    # Whatever a dump holds (numbers, lists, nulls where strings belong, booleans written
    # otherwise), the polars reader either leaves the block to the line-by-line reader or gives
    # exactly its articles and errors.
    from dedup.dump import _jsonl_block_checked, _jsonl_block_polars

    data = "".join("{" + ", ".join(f'"{k}": {v}' for k, v in line.items()) + "}\n" for line in lines).encode()
    fast = _jsonl_block_polars(data, "in.jsonl", 1, Columns())
    if fast is None:
        return
    checked = list(_jsonl_block_checked(data, "in.jsonl", 1, Columns()))
    assert [(n, str(r)) for n, r in fast] == [(n, str(r)) for n, r in checked]


@pytest.mark.parametrize("between", ["\n", "\r\n", "   \n", " ", "\t", "\r"])
def test_lines_blank_or_opening_with_white_space_are_read_as_the_checking_reader_reads_them(between: str) -> None:
    """A blank line, a line of white space or a line that opens with some between two articles:
    the polars reader leaves the block to the line-by-line reader, or gives its very articles
    and errors, numbered by their lines."""
    from dedup.dump import _jsonl_block_checked, _jsonl_block_polars

    data = ('{"id": "a", "text": "نص"}\n' + between + '{"id": "b", "text": "نص آخر"}\n{"id": "c"}\n').encode()
    fast = _jsonl_block_polars(data, "in.jsonl", 1, Columns())
    checked = [(n, str(r)) for n, r in _jsonl_block_checked(data, "in.jsonl", 1, Columns())]
    assert fast is None or [(n, str(r)) for n, r in fast] == checked
    assert checked[-1][0] == (4 if between.endswith("\n") else 3)  # the last article's line


def test_match_only_finds_stories_in_a_state_without_adding(tmp_path: Path, stories: dict[str, str]) -> None:
    state = tmp_path / "state"
    base = write_jsonl(tmp_path / "base.jsonl", [{"id": k, "text": t} for k, t in stories.items()])
    assert CliRunner().invoke(main, ["scan", str(base), "-o", str(tmp_path / "b.jsonl"), "--state", str(state)]
                              ).exit_code == 0
    probe = write_jsonl(tmp_path / "probe.jsonl", [{"id": "p1", "text": new_headline(stories["summit"])},
                                                   {"id": "p2", "text": "نص لا علاقة له بأي خبر مخزن هنا على الإطلاق"}])
    result = CliRunner().invoke(main, ["scan", str(probe), "-o", str(tmp_path / "m.jsonl"), "--state", str(state),
                                       "--match-only"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "m.jsonl").read_text(encoding="utf-8").splitlines())}
    assert (rows["p1"]["action"], rows["p1"]["cluster"]) == ("matched", "summit")
    assert (rows["p2"]["action"], rows["p2"]["cluster"]) == ("unmatched", "p2")
    with Detector.open(state) as d:
        assert len(d) == len(stories)  # nothing was added
    assert CliRunner().invoke(main, ["scan", str(probe), "-o", str(tmp_path / "x.jsonl"), "--match-only"]
                              ).exit_code != 0


@pytest.mark.parametrize(("field", "value"), [("text", 5), ("text", [1, 2]), ("title", True), ("url", {"a": 1})])
def test_a_non_string_in_a_text_field_is_an_error_naming_the_line(tmp_path: Path, stories: dict[str, str],
                                                                   field: str, value: object) -> None:
    # A clean file otherwise: the fast reader must not turn the value into a string silently.
    rows: list[dict[str, object]] = [{"id": "a", "text": stories["tech"]}, {"id": "b", "text": "نص", field: value}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(tmp_path / "o.jsonl")])
    assert result.exit_code != 0 and f"{src}:2: '{field}' must be a string" in result.output


def test_an_article_appended_to_a_page_is_a_row_of_its_own(tmp_path: Path, stories: dict[str, str]) -> None:
    page = stories["football"] + "\nإقرأ أيضاً:\n" + stories["health"]
    code, output, items = scan(tmp_path, [{"id": "page", "text": page}, {"id": "health", "text": stories["health"]}])
    assert code == 0, output
    rows = {r["id"]: r for r in items}
    assert rows["page#embedded-1"]["embedded_in"] == "page"
    assert rows["page#embedded-1"]["cluster"] == rows["health"]["cluster"] != rows["page"]["cluster"]


def test_a_dump_larger_than_the_sort_memory_is_sorted_on_disk_with_the_same_result(
        tmp_path: Path, stories: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    import dedup.dump

    rows = corpus(stories)
    random.Random(3).shuffle(rows)
    whole = scan(tmp_path, rows)
    monkeypatch.setattr(dedup.dump, "RUN_ROWS", 3)  # runs of three articles, merged from disk
    monkeypatch.setattr(dedup.dump, "_BLOCK_BYTES", 700)  # JSONL read a few lines at a time
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    spilled = scan(tmp_path, rows)
    assert whole[0] == spilled[0] == 0
    assert whole[2] == spilled[2]
    assert list((tmp_path / "tmp").iterdir()) == []  # the runs are gone


@pytest.mark.parametrize("first_block", [64, 16], ids=["even-blocks", "growing-blocks"])
def test_the_dump_reader_streams_in_time_order_and_names_lines_in_later_blocks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_block: int) -> None:
    import dedup.dump
    from dedup.dump import Dump, InputError, ReadReport

    monkeypatch.setattr(dedup.dump, "_BLOCK_BYTES", 64)
    monkeypatch.setattr(dedup.dump, "_FIRST_BLOCK_BYTES", first_block)  # 16, 32, then 64 bytes a block
    rows = [{"id": f"n{i}", "text": f"نص رقم {i}", "published": f"2015-07-{20 - i % 7:02d} 10:00:00"}
            for i in range(40)]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    with Dump([path], ReadReport(), run_rows=6) as dump:
        assert len(dump) == 40
        read = list(dump)
    assert [a.id for a in read] == [a.id for a in sorted(read, key=time_order_key)]
    assert sorted(a.id for a in read) == sorted(r["id"] for r in rows)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[33] = lines[33][:-2]  # a broken line far past the first block
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"in\.jsonl:34: malformed JSON"):
        Dump([path], ReadReport(), run_rows=6).__enter__()
    report = ReadReport()
    with Dump([path], report, skip_bad=True, run_rows=6) as dump:
        assert len(dump) == 39 and len(report.skipped) == 1


def test_the_dump_reader_hands_every_article_read_to_on_read_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dedup.dump
    from dedup.dump import Dump, ReadReport

    monkeypatch.setattr(dedup.dump, "_ON_READ_ROWS", 4)
    rows = [{"id": f"n{i}", "text": f"نص رقم {i}", "published": f"2015-07-{20 - i % 7:02d} 10:00:00"}
            for i in range(30)]
    rows.append(dict(rows[3]))  # a repeated id with the same content is dropped, not handed on
    seen: list[list[str]] = []
    with Dump([write_jsonl(tmp_path / "in.jsonl", rows)], ReadReport(), run_rows=7,
              on_read=lambda batch: seen.append([a.id for a in batch])) as dump:
        ids = [a.id for a in dump]
    assert [i for batch in seen for i in batch] == [r["id"] for r in rows[:30]]  # file order, once each
    assert max(len(batch) for batch in seen) <= 4
    assert sorted(ids) == sorted(r["id"] for r in rows[:30])


def test_a_gzip_corrupt_midway_keeps_what_was_read_with_skip_bad(tmp_path: Path, stories: dict[str, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    import dedup.dump

    monkeypatch.setattr(dedup.dump, "_BLOCK_BYTES", 256)
    rows = [{"id": f"{k}{i}", "text": t} for i in range(20) for k, t in stories.items()]
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    packed = gzip.compress(body, mtime=0)
    src = tmp_path / "dump.jsonl.gz"
    src.write_bytes(packed[: len(packed) * 2 // 3])  # an interrupted download
    out = tmp_path / "o.jsonl"
    strict = CliRunner().invoke(main, ["scan", str(src), "-o", str(out)])
    assert strict.exit_code != 0 and "the compressed file is corrupt" in strict.output and not out.exists()
    lenient = CliRunner().invoke(main, ["scan", str(src), "-o", str(out), "--skip-bad"])
    assert lenient.exit_code == 0, lenient.output
    kept = out.read_text(encoding="utf-8").splitlines()
    assert 0 < len(kept) < len(rows)
    assert "skipped: " in lenient.output and "dump.jsonl.gz:" in lenient.output


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_tables_written_in_batches_equal_one_batch(tmp_path: Path, suffix: str) -> None:
    from dedup.dump import write_table

    rows = [{"id": f"a{i}", "credit": None if i < 7 else "واس", "n": i, "tags": ["x"] * (i % 3)} for i in range(20)]
    one, many = tmp_path / f"one{suffix}", tmp_path / f"many{suffix}"
    assert write_table(rows, one) == write_table(iter(rows), many, batch_rows=3) == 20
    if suffix == ".jsonl":
        assert one.read_text(encoding="utf-8") == many.read_text(encoding="utf-8")
    else:
        read = pl.read_csv if suffix == ".csv" else pl.read_parquet
        assert read(one).equals(read(many))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([one.name, many.name])  # no temporary left


def test_the_stories_table_has_its_declared_types_in_every_batch(tmp_path: Path, stories: dict[str, str]) -> None:
    """A batch where a column is always empty (no credit_via, no embedded article) still gets
    the declared type, so every batch and every run of a dump give one schema."""
    from dedup.dump import STORY_SCHEMA, write_table

    src = write_jsonl(tmp_path / "in.jsonl", corpus(stories))
    out, stories = tmp_path / "items.parquet", tmp_path / "stories.parquet"
    result = CliRunner().invoke(main, ["scan", str(src), "-o", str(out), "--clusters", str(stories), "-q"])
    assert result.exit_code == 0, result.output
    table = pl.read_parquet(stories)
    assert table.schema == pl.Schema(STORY_SCHEMA)
    rows = table.to_dicts()
    again = tmp_path / "again.parquet"
    assert write_table(iter(rows), again, batch_rows=1, schema=STORY_SCHEMA) == len(rows)
    assert pl.read_parquet(again).equals(table)


@pytest.fixture(scope="module")
def worker_pool_of_two() -> Iterator[Executor]:
    from dedup.detector import worker_pool

    with worker_pool(2) as pool:
        yield pool


@pytest.fixture
def readers(worker_pool_of_two: Executor, monkeypatch: pytest.MonkeyPatch) -> Executor:
    """Workers that parse JSONL dumps of any size (from 128 MB on otherwise)."""
    import dedup.dump

    monkeypatch.setattr(dedup.dump, "WORKER_READ_BYTES", 0)
    return worker_pool_of_two


class _Starting(Executor):
    """A worker pool as a dump sees it while its workers start (dedup.detector.WorkerPool's
    ``started``): up once it was asked ``blocks_here`` times (blocks read in this process)."""

    class _UpAfter:
        def __init__(self, asked: int) -> None:
            self.left = asked

        def is_set(self) -> bool:
            self.left -= 1
            return self.left < 0

    def __init__(self, pool: Executor | None, blocks_here: int) -> None:
        self._pool = pool  # None: no worker ever comes up, nothing may be handed to one
        self.started = self._UpAfter(blocks_here)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        assert self._pool is not None, f"{fn.__name__} was handed to a worker that is not up"
        return self._pool.submit(fn, *args, **kwargs)


def read_placed(path: Path, pool: Executor | None) -> tuple[list[Article], ReadReport, int]:
    """The articles of a dump read with --skip-bad (sorted in runs of 8), its report and its
    number of runs; each article handed on with its place in a run is read back from there."""
    from dedup._runs import Place, articles_at
    from dedup.dump import Dump

    report = ReadReport()
    places: list[Place] = []
    with Dump([path], report, skip_bad=True, run_rows=8, pool=pool,
              on_place=lambda article, place: places.append(place)) as dump:
        assert dump._pool is pool  # the workers read when given
        articles = list(dump)
        found = articles_at(places)
        assert len(places) == len(articles) and [a for a, _ in found] == articles
        # The runs keep each article's content digest, as the detector computes it.
        assert [digest for _, digest in found] == [content_hash(a) for a in articles]
        return articles, report, len(dump._runs)


def test_worker_read_jsonl_gives_the_same_articles_errors_and_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readers: Executor) -> None:
    """JSONL parsed in worker processes (dedup scan -j 2) reads exactly what this process reads:
    the same articles in the same order, the same bad lines named in file order, the same
    repeated ids dropped, whichever block a line falls in."""
    import tempfile

    import dedup.dump
    from dedup.dump import Dump, InputError, ReadReport

    monkeypatch.setattr(dedup.dump, "_BLOCK_BYTES", 300)
    monkeypatch.setattr(dedup.dump, "_FIRST_BLOCK_BYTES", 100)
    rows = [{"id": f"n{i}", "text": f"نص رقم {i}", "published": f"2015-07-{20 - i % 7:02d} 10:00:00"}
            for i in range(40)]
    rows[25] = dict(rows[3])  # the same id and content: dropped and counted
    rows[31] = dict(rows[5], text="نص آخر")  # the same id, other content: a bad line
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines[12] = lines[12][:-2]  # malformed
    lines[36] = json.dumps({"text": "بلا معرف"}, ensure_ascii=False)  # no id
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    (here, here_report, _), (there, there_report, _) = read_placed(path, None), read_placed(path, readers)
    assert there == here and len(here) == 36
    assert there_report.skipped == here_report.skipped and len(here_report.skipped) == 3
    assert [s.split(":")[1] for s in here_report.skipped] == ["13", "32", "37"]
    assert there_report.repeated == here_report.repeated == 1
    # While the workers start, this process parses the blocks itself (the first few, or all):
    # the same again.
    for starting_pool in (_Starting(readers, 2), _Starting(None, 10**6)):
        starting, starting_report, _ = read_placed(path, starting_pool)
        assert starting == here and starting_report.skipped == here_report.skipped
        assert starting_report.repeated == 1
    # Stopped at the bad line while later blocks are still being parsed: nothing is left behind.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for pool in (None, readers, _Starting(None, 10**6)):
        with pytest.raises(InputError, match=r"in\.jsonl:13: malformed JSON"):
            Dump([path], ReadReport(), pool=pool).__enter__()
        assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_worker_read_tables_gives_the_same_articles_errors_and_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readers: Executor, kind: str) -> None:
    """CSV and Parquet batches turned into articles in the workers read exactly what this
    process reads: the same articles in the same order, the same bad rows named in order (by
    their line or row), the same repeated ids dropped, whichever batch a row falls in."""
    import dedup.dump

    monkeypatch.setattr(dedup.dump, "_TABLE_BATCH", 6)
    rows = [{"id": f"n{i}", "text": f"نص رقم {i}", "published": f"2015-07-{20 - i % 7:02d} 10:00:00"}
            for i in range(40)]
    rows[25] = dict(rows[3])  # the same id and content: dropped and counted
    rows[31] = dict(rows[5], text="نص آخر")  # the same id, other content: a bad row
    rows[12] = dict(rows[12], id="")  # no id
    frame = pl.DataFrame(rows)
    path = tmp_path / f"in.{kind}"
    frame.write_csv(path) if kind == "csv" else frame.write_parquet(path)

    (here, here_report, _), (there, there_report, runs) = read_placed(path, None), read_placed(path, readers)
    assert runs >= 5  # a run for each batch the workers read
    assert there == here and len(here) == 37
    assert there_report.skipped == here_report.skipped and len(here_report.skipped) == 2
    first = 2 if kind == "csv" else 1  # a CSV's first row is on line 2
    named = [re.search(r"in\.(?:csv:|parquet row )(\d+):", s) for s in here_report.skipped]
    assert [m.group(1) if m else s for m, s in zip(named, here_report.skipped, strict=True)] == [
        str(12 + first), str(31 + first)]
    assert there_report.repeated == here_report.repeated == 1


def test_a_csv_row_is_named_by_its_line_when_quoted_fields_span_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readers: Executor) -> None:
    """Texts in a CSV often keep their paragraphs: a quoted field spans lines. A bad row is still
    named by the line it starts on (and a repeated id by the line of the first), read here or
    in the workers, whichever batch it falls in."""
    import dedup.dump
    from dedup.dump import Dump

    monkeypatch.setattr(dedup.dump, "_TABLE_BATCH", 2)
    rows = [{"id": "a", "text": "فقرة أولى\nفقرة ثانية\nفقرة ثالثة", "note": "سطر\nآخر"},
            {"id": "b", "text": "نص", "note": ""},
            {"id": "", "text": "بلا معرف", "note": ""},  # line 7
            {"id": "c", "text": "نص\r\nبسطرين", "note": ""},
            {"id": "a", "text": "محتوى آخر", "note": ""}]  # line 10: 'a' was first on line 2
    path = tmp_path / "paragraphs.csv"
    pl.DataFrame(rows).write_csv(path)
    lines = path.read_bytes().split(b"\n")
    assert lines[6].startswith(b'"",') and lines[9].startswith(b"a,")  # where the bad rows start
    for pool in (None, readers):
        report = ReadReport()
        with Dump([path], report, skip_bad=True, pool=pool) as dump:
            assert [a.id for a in dump] == ["a", "b", "c"]
        assert [s.split(":")[1] for s in report.skipped] == ["7", "10"]
        assert "already used on line 2" in report.skipped[1]


def test_worker_read_refuses_a_table_that_cannot_be_read_as_this_process_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readers: Executor) -> None:
    """A missing column, a wrong type, a ragged CSV row further down: the same error, naming
    the file (and the line after which reading failed), with or without the workers."""
    import dedup.dump
    from dedup.dump import Dump, InputError, ReadReport

    monkeypatch.setattr(dedup.dump, "_TABLE_BATCH", 10)
    missing = tmp_path / "missing.csv"
    pl.DataFrame({"id": ["a"], "body": ["نص"]}).write_csv(missing)
    wrong = tmp_path / "wrong.parquet"
    pl.DataFrame({"id": ["a"], "text": [["نص"]]}).write_parquet(wrong)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,text\n" + "".join(f"n{i},نص رقم {i}\n" for i in range(35)) + "x,نص,زائد\n"
                      + "".join(f"m{i},نص {i}\n" for i in range(5)), encoding="utf-8")
    for path, message in ((missing, "missing.csv: no column 'text'"),
                          (wrong, "wrong.parquet: column 'text' .* expected text"),
                          (ragged, r"ragged.csv: cannot be read as CSV after line \d+")):
        said = []
        for pool in (None, readers):
            with pytest.raises(InputError, match=message) as error:
                Dump([path], ReadReport(), skip_bad=True, pool=pool).__enter__()
            said.append(str(error.value))
        assert said[0] == said[1]


def test_workers_read_a_dump_by_its_text_size_and_compressed_files_count_four_times(
        tmp_path: Path, worker_pool_of_two: Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    import dedup.dump
    from dedup.dump import Dump

    rows = [{"id": f"n{i}", "text": f"نص رقم {i} " * 20} for i in range(50)]
    plain = write_jsonl(tmp_path / "in.jsonl", rows)
    packed = tmp_path / "in.parquet"
    pl.DataFrame(rows).write_parquet(packed)
    for path in (plain, packed):
        size = path.stat().st_size
        weight = 4 if path.suffix == ".parquet" else 1
        for threshold, read_there in ((size * weight, True), (size * weight + 1, False)):
            monkeypatch.setattr(dedup.dump, "WORKER_READ_BYTES", threshold)
            with Dump([path], ReadReport(), pool=worker_pool_of_two) as dump:
                assert (dump._pool is not None) == read_there, (path, threshold)
                assert len(list(dump)) == len(rows)


def test_a_worker_refuses_a_run_place_that_holds_another_article(tmp_path: Path) -> None:
    """A place names the article it expects: a run file changed under it is an error, not a
    silently wrong article sketched."""
    from dedup._runs import articles_at, read_run, write_run

    run = tmp_path / "run.pickle"
    write_run(run, [(1, Article(id="a", text="نص أ")), (2, Article(id="b", text="نص ب"))])
    placed = list(read_run(run, frozenset()))
    assert [a for a, _ in articles_at([place for _, place in placed])] == [a for a, _ in placed]
    name, offset, at, _ = placed[0][1]
    with pytest.raises(RuntimeError, match="changed while it was read"):
        articles_at([(name, offset, at, "b")])


def test_worker_read_keeps_the_lines_before_a_corrupt_gzip_and_reports_it_last(
        tmp_path: Path, stories: dict[str, str], monkeypatch: pytest.MonkeyPatch, readers: Executor) -> None:
    import gzip

    import dedup.dump
    from dedup.dump import Dump, InputError, ReadReport

    monkeypatch.setattr(dedup.dump, "_BLOCK_BYTES", 256)
    rows = [{"id": f"{k}{i}", "text": t} for i in range(20) for k, t in stories.items()]
    data = gzip.compress("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode(), mtime=0)
    path = tmp_path / "dump.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])  # an interrupted download
    kept = {}
    for pool in (None, readers):
        report = ReadReport()
        with Dump([path], report, skip_bad=True, pool=pool) as dump:
            kept[pool] = list(dump)
        assert len(report.skipped) == 1 and "the compressed file is corrupt" in report.skipped[0]
        with pytest.raises(InputError, match="the compressed file is corrupt"):
            Dump([path], ReadReport(), pool=pool).__enter__()
    assert kept[readers] == kept[None] and 0 < len(kept[None]) < len(rows)


def test_workers_run_polars_on_one_thread_each(worker_pool_of_two: Executor) -> None:
    """Two workers parsing dump blocks share the cores: each runs polars on one thread, not on a
    pool as large as the machine (which oversubscribed the cores)."""
    sizes = [worker_pool_of_two.submit(pl.thread_pool_size) for _ in range(4)]
    assert [f.result() for f in sizes] == [1, 1, 1, 1]


def test_the_kernels_warmed_while_a_dump_is_read_are_those_its_matching_calls(stories: dict[str, str]) -> None:
    """warm_kernels (run in a thread while a large dump is read) loads every compiled kernel a
    compiled detector then calls, for the very argument types: matching the dump loads none.
    In a process of its own, where numba has loaded nothing yet."""
    code = """
import json, sys
import numba
from dedup import Article, Detector, _compiled
from dedup.detector import warm_kernels

def loaded():
    return {name: [str(s) for s in f.signatures] for name in dir(_compiled)
            if isinstance(f := getattr(_compiled, name), numba.core.registry.CPUDispatcher) and f.signatures}

warm_kernels()
warmed = loaded()
stories = json.loads(sys.argv[1])
with Detector.in_memory(keep_texts=False, keep_details=False) as d:
    d.compile()
    # (enough for the band table to grow, as a large dump's does)
    d.add_all([Article(id=f"{k}-{i}", text=f"{t} {i}", published=f"2016-01-0{1 + i % 9}") for i in range(140)
               for k, t in stories.items()])
print(json.dumps([sorted(warmed), loaded() == warmed]))
"""
    out = subprocess.run([sys.executable, "-c", code, json.dumps(stories)], capture_output=True, text=True, check=True)
    warmed, nothing_new = json.loads(out.stdout)
    assert {"band_table_add", "band_table_grown", "count_and_verify"} <= set(warmed)
    assert nothing_new


def test_workers_yield_the_cores_to_the_process_that_adds_the_articles(worker_pool_of_two: Executor) -> None:
    """The adding process is what a scan waits for: its workers run at a lower priority, so
    that they sketch with the core it leaves, not with one it needs."""
    import os

    from dedup.detector import WORKER_NICENESS

    here = os.nice(0)
    assert [worker_pool_of_two.submit(os.nice, 0).result() for _ in range(4)] == [min(here + WORKER_NICENESS, 19)] * 4
    assert os.nice(0) == here  # this process keeps its own


def test_workers_collect_cycles_rarely_a_scan_not_at_all_and_the_scan_puts_the_collector_back(
        tmp_path: Path, worker_pool_of_two: Executor, stories: dict[str, str]) -> None:
    """A collection looks at every object made since the last one, and a scan keeps what it
    makes: it cost a 100k-article scan 0.46 s even with rare collections. Workers collect
    rarely; a scan turns the collector off while it runs, and a scan run inside another program
    leaves that program's collector as it was."""
    import gc

    from dedup.detector import RARE_COLLECTIONS

    assert worker_pool_of_two.submit(gc.get_threshold).result() == RARE_COLLECTIONS
    during: list[bool] = []
    dump = write_jsonl(tmp_path / "in.jsonl", [{"id": k, "text": t} for k, t in stories.items()])
    assert gc.isenabled()
    with mock.patch("dedup.dump.write_columns", side_effect=lambda rows, *a, **k: during.append(gc.isenabled())):
        result = CliRunner().invoke(main, ["scan", str(dump), "-o", str(tmp_path / "out.jsonl"), "-q"])
    assert result.exit_code == 0, result.output
    assert during == [False] and gc.isenabled()
    gc.disable()
    try:  # off before: off after
        result = CliRunner().invoke(main, ["scan", str(dump), "-o", str(tmp_path / "out.jsonl"), "-q"])
        assert result.exit_code == 0, result.output
        assert not gc.isenabled()
    finally:
        gc.enable()


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       ends_with_newline=st.booleans(), first=st.integers(1, 16), block=st.integers(1, 64))
def test_a_plain_jsonl_file_goes_to_the_workers_as_the_byte_ranges_of_the_blocks_read_here(
        tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], ends_with_newline: bool, first: int,
        block: int) -> None:
    """The workers read uncompressed JSONL themselves, by byte range: the ranges cut the file
    where reading it here cuts it, and number the lines alike."""
    import dedup.dump
    from dedup.dump import _jsonl_blocks, _jsonl_spans

    data = b"\n".join(lines) + (b"\n" if ends_with_newline and lines else b"")
    path = tmp_path_factory.mktemp("spans") / "dump.jsonl"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup.dump, "_FIRST_BLOCK_BYTES", first)
        patch.setattr(dedup.dump, "_BLOCK_BYTES", block)
        spans = [(line, data[start:end]) for line, (start, end) in _jsonl_spans(str(path))]
        assert spans == list(_jsonl_blocks(str(path), None, False))


def test_a_worker_refuses_a_byte_range_the_file_no_longer_holds(tmp_path: Path) -> None:
    from dedup.dump import _DEFAULT_COLUMNS, InputError, _read_block

    path = write_jsonl(tmp_path / "dump.jsonl", [{"id": "a", "text": "نص أ"}, {"id": "b", "text": "نص ب"}])
    size = path.stat().st_size
    assert [entry[1] for entry in _read_block(str(path), 1, (0, size), _DEFAULT_COLUMNS, str(tmp_path / "r"))] == [
        "a", "b"]
    with pytest.raises(InputError, match=r"dump\.jsonl:1: the file was cut short"):
        _read_block(str(path), 1, (0, size + 10), _DEFAULT_COLUMNS, str(tmp_path / "r2"))


def test_a_worker_run_of_a_plain_jsonl_file_holds_where_the_lines_are_not_the_texts(
        tmp_path: Path, stories: dict[str, str]) -> None:
    """The workers' runs of an uncompressed JSONL file keep no texts (they cost as much disk as
    the dump, and as much time to write and read back as parsing it): an article read back
    from its place has its text from its line, the digest the detector computes, and its
    renamed columns; a file changed under the run is an error, not a wrong text sketched."""
    from dedup._runs import articles_at, read_run
    from dedup.dump import InputError, _read_block

    rows = [{"key": f"{k}-{i}", "body": t + f" {i}", "title": "عنوان", "published": f"2016-01-0{9 - i}"}
            for i in range(3) for k, t in stories.items()]
    path = write_jsonl(tmp_path / "dump.jsonl", rows)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # the last line has no line break
    run = tmp_path / "run.pickle"
    columns = Columns(id="key", text="body")
    checked = _read_block(str(path), 1, (0, path.stat().st_size), columns, str(run))
    assert [entry[1] for entry in checked] == [r["key"] for r in rows]
    held = run.read_bytes()
    assert all(r["body"].encode() not in held for r in rows) and len(held) < path.stat().st_size // 2
    merged = list(read_run(run, frozenset(), texts=True))
    assert [a.id for a, _ in merged] == [r["key"] for r in sorted(rows, key=lambda r: (r["published"], r["key"]))]
    found = articles_at([place for _, place in merged])
    assert [a for a, _ in found] == [a for a, _ in merged]
    assert {a.id: a.text for a, _ in found} == {r["key"]: r["body"] for r in rows}
    assert [digest for _, digest in found] == [content_hash(a) for a, _ in merged]
    key = rows[0]["key"]  # on line 1: another id of the same length there, the other lines in place
    path.write_bytes(path.read_bytes().replace(f'"{key}"'.encode(), f'"{key[::-1]}"'.encode(), 1))
    assert [a.id for a, _ in articles_at([place for a, place in merged if a.id != key])] != []
    with pytest.raises(InputError, match=rf"dump\.jsonl:1: changed while it was scanned: this line no longer "
                                         rf"holds id '{key}'\. Scan a dump once nothing writes to it"):
        articles_at([place for _, place in merged])


def test_a_clean_block_is_written_by_columns_as_it_would_be_article_by_article(
        tmp_path: Path, stories: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker writes the run of a clean block of a plain JSONL file from polars's columns
    (sorted by polars, rows zipped): the run file and what the reading process is told are the
    bytes and values the article-by-article way gives. The block has undated rows, equal times
    (ordered by id, then line), missing and null fields, an agency flag, integer ids and renamed
    columns; a row without an id sends the block the other way, which names its line."""
    from dedup import dump
    from dedup.dump import InputError, _read_block

    rows: list[dict[str, Any]] = []
    for i, (k, t) in enumerate(stories.items()):
        rows.append({"key": f"{k}-b", "body": t, "published": "2016-01-02 10:00", "title": None})
        rows.append({"key": f"{k}-a", "body": t + " 1", "published": "2016-01-02 10:00", "url": f"https://x/{k}",
                     "outlet": "spa", "outlet_is_agency": i % 2 == 0})
        rows.append({"key": f"{k}-u", "body": t + " 2", "byline": "رويترز", "fetched_at": "2016-01-03"})
        rows.append({"key": i, "body": t + " 3", "published": f"2015-12-{10 + i}"})
    rows.append(dict(rows[0]))  # an id repeated (told apart later, by the reading process)
    columns = Columns(id="key", text="body")

    def both_ways(path: Path) -> list[tuple[list[Any], bytes]]:
        out = []
        for way in ("columns", "articles"):
            run = tmp_path / f"{path.stem}-{way}.run"
            with monkeypatch.context() as m:
                if way == "articles":
                    m.setattr(dump, "_jsonl_block_run", lambda *args: None)
                checked = _read_block(str(path), 1, (0, path.stat().st_size), columns, str(run))
            # (an error row as its message: exceptions compare by identity)
            out.append(([e if len(e) == 3 else (e[0], str(e[1])) for e in checked], run.read_bytes()))
        return out

    (by_columns, by_articles) = both_ways(write_jsonl(tmp_path / "clean.jsonl", rows))
    assert by_columns == by_articles
    assert [entry[1] for entry in by_columns[0]] == [str(r["key"]) for r in rows]
    # A row without an id: the block goes the row-by-row way, which names the line.
    no_id = write_jsonl(tmp_path / "no_id.jsonl", [*rows[:3], {"body": "نص"}])
    (by_columns, by_articles) = both_ways(no_id)
    assert by_columns == by_articles
    assert [e for e in by_columns[0] if len(e) == 2] == [
        (4, str(InputError(str(no_id), 4, "missing 'id'", "Every row needs an 'id' and a 'text'")))]
    # polars reads such a block once, whichever way it then goes.
    reads = []
    polars_frame = dump._polars_frame
    monkeypatch.setattr(dump, "_polars_frame", lambda *args: reads.append(1) or polars_frame(*args))
    _read_block(str(no_id), 1, (0, no_id.stat().st_size), columns, str(tmp_path / "once.run"))
    assert len(reads) == 1


def test_a_row_has_one_fingerprint_whichever_way_a_worker_reads_it(tmp_path: Path, stories: dict[str, str]) -> None:
    """Repeated ids are told apart by fingerprint: polars computes it from the columns of a
    clean block, the checking reader (a block with a blank line), a compressed file's block and
    CSV or Parquet batches from the articles. They must agree, or a row repeated with the same
    content would be refused as other content (and a changed one let through)."""
    from dedup.dump import _DEFAULT_COLUMNS, _read_block, _read_table_block

    rows = [{"id": k, "text": t, "url": f"https://x/{k}", "outlet": "okaz", "published": "2016-01-02"}
            for k, t in stories.items()]
    rows[0]["title"] = "عنوان"  # one row with a title, the others without the field
    clean = write_jsonl(tmp_path / "clean.jsonl", rows)
    blank = tmp_path / "blank.jsonl"
    blank.write_bytes(clean.read_bytes().replace(b"\n", b"\n\n", 1))

    def prints(checked: list[Any]) -> dict[str, int]:
        return {entry[1]: entry[2] for entry in checked if len(entry) == 3}

    fast = prints(_read_block(str(clean), 1, (0, clean.stat().st_size), _DEFAULT_COLUMNS, str(tmp_path / "r1")))
    assert len(fast) == len(rows)
    checking = prints(_read_block(str(blank), 1, (0, blank.stat().st_size), _DEFAULT_COLUMNS, str(tmp_path / "r2")))
    in_memory = prints(_read_block(str(clean), 1, clean.read_bytes(), _DEFAULT_COLUMNS, str(tmp_path / "r3")))
    frame = pl.DataFrame(rows).with_columns(pl.all().cast(pl.String))
    table = prints(_read_table_block(str(tmp_path / "t.parquet"), 1, frame, _DEFAULT_COLUMNS, "row",
                                     str(tmp_path / "r4")))
    assert fast == checking == in_memory == table
    edited = write_jsonl(tmp_path / "edited.jsonl", [dict(rows[0], title="عنوان آخر"), *rows[1:]])
    other = prints(_read_block(str(edited), 1, (0, edited.stat().st_size), _DEFAULT_COLUMNS, str(tmp_path / "r5")))
    assert [k for k in fast if fast[k] != other[k]] == [rows[0]["id"]]


def test_cutting_a_plain_jsonl_file_into_blocks_holds_one_block_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main process only works out where the workers' blocks start and end: what it holds
    while doing so stays about one block, however large the file (a memory map of the file made
    the 1M-article scan's main process count all 4 GB of it)."""
    import dedup.dump
    from dedup.dump import _jsonl_spans

    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("reads the resident memory from /proc (Linux)")

    def resident_mib() -> float:
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    monkeypatch.setattr(dedup.dump, "_BLOCK_BYTES", 1 << 20)
    monkeypatch.setattr(dedup.dump, "_FIRST_BLOCK_BYTES", 1 << 20)
    row = json.dumps({"id": "x", "text": "نص " * 300}, ensure_ascii=False) + "\n"
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range((48 << 20) // len(row.encode())):
            fh.write(row)
    before = resident_mib()
    grown, ends = 0.0, []
    for _, span in _jsonl_spans(str(path)):
        grown = max(grown, resident_mib() - before)
        ends.append(span[1])
    assert ends[-1] == path.stat().st_size and grown < 16, f"{grown:.0f} MiB held while cutting a 48 MB file"


def test_a_scan_without_state_reads_the_texts_of_worker_runs_only_in_the_workers(
        tmp_path: Path, readers: Executor, stories: dict[str, str]) -> None:
    """The main process merges the runs the workers wrote without decoding their texts (the
    workers read them from the places); runs it wrote itself, and every run when asked, keep them."""
    from dedup._runs import Place, articles_at
    from dedup.dump import Dump

    rows = [{"id": f"{k}{i}", "text": t, "published": f"2016-01-0{1 + i % 9}"} for i in range(12) for k, t in
            stories.items()]
    path = write_jsonl(tmp_path / "dump.jsonl", rows)
    for texts in (False, True):
        places: list[Place] = []
        with Dump([path], ReadReport(), run_rows=8, pool=readers, texts=texts,
                  on_place=lambda article, place, into=places: into.append(place)) as dump:
            articles = list(dump)
            full = [a for a, _ in articles_at(places)]
        assert all(a.text == "" for a in articles) != texts
        assert [a.id for a in full] == [a.id for a in articles] and all(a.text for a in full)
        assert {a.id: a.text for a in full} == {r["id"]: r["text"] for r in rows}
    with Dump([path], ReadReport(), run_rows=8, texts=False, on_place=lambda article, place: None) as dump:
        assert dump._pool is None and all(a.text for a in dump)  # runs written here keep their texts


def test_without_digests_the_workers_still_hash_the_ids_an_appended_article_can_have(
        tmp_path: Path, readers: Executor, stories: dict[str, str]) -> None:
    """A scan without a state has the workers leave out the digests of the articles they read
    back (SketchAhead(digests=False)): nothing compares them, as a dump's ids are unique. An id
    that an appended article's can be (PAGE#embedded-1) is hashed all the same: met twice, it is
    told apart by content exactly as with digests. A detector that holds articles refuses it."""
    from dedup import DuplicateIdError
    from dedup._runs import articles_at
    from dedup.detector import SketchAhead, SketchConfig
    from dedup.dump import Dump

    page = {"id": "page", "text": stories["summit"] + "\nإقرأ أيضاً:\n" + stories["health"], "published": "2016-01-01"}
    same = {"id": "page#embedded-1", "text": stories["health"], "published": "2016-01-01"}
    changed = dict(same, text=stories["health"] + " تعديل")
    others = [{"id": k, "text": t, "published": "2016-01-03"} for k, t in stories.items() if k != "health"]
    outcomes: dict[bool, list[Any]] = {}
    for digests in (True, False):
        for copy in (same, changed):
            path = write_jsonl(tmp_path / f"{digests}-{copy is same}.jsonl", [page, copy, *others])
            with Detector.in_memory(keep_texts=False) as detector:
                ahead = SketchAhead(readers, SketchConfig(), digests=digests)
                places: list[Any] = []

                def on_place(article: Article, place: Any, ahead: SketchAhead = ahead,
                             into: list[Any] = places) -> None:
                    into.append(place)
                    ahead.place(article, place)

                try:
                    with Dump([path], ReadReport(), run_rows=2, pool=readers, texts=False, on_place=on_place) as dump:
                        articles = list(dump)
                        found = {a.id: digest for a, digest in articles_at(places, digests)}
                        assert found["page#embedded-1"] != "" and (found["page"] == "") != digests
                        try:
                            detector.add_all(articles, ahead=ahead)
                            outcomes.setdefault(digests, []).append(sorted(detector.assignments()))
                        except DuplicateIdError as exc:
                            outcomes.setdefault(digests, []).append(str(exc))
                finally:
                    ahead.close()
    assert outcomes[True] == outcomes[False]
    assert isinstance(outcomes[True][0], list) and isinstance(outcomes[True][1], str)  # unchanged, refused
    with Detector.in_memory() as detector:
        detector.add(Article(id="x", text=stories["summit"]))
        ahead = SketchAhead(readers, SketchConfig(), digests=False)
        try:
            with pytest.raises(ValueError, match="holds no articles yet"):
                detector.add_all([Article(id="y", text=stories["health"])], ahead=ahead)
        finally:
            ahead.close()


def test_articles_whose_texts_stayed_in_the_runs_are_sketched_and_checked_from_the_runs(
        tmp_path: Path, readers: Executor, stories: dict[str, str]) -> None:
    """Articles merged from the workers' runs come without their texts: however few they are,
    the workers sketch them from the runs (not this process from an empty text), and an id the
    detector holds already is compared by the digest the worker computed."""
    from dedup import DuplicateIdError
    from dedup.detector import SketchAhead, SketchConfig
    from dedup.dump import Dump

    rows = [{"id": k, "text": t, "published": "2016-01-02"} for k, t in stories.items()]
    same = write_jsonl(tmp_path / "same.jsonl", rows)
    changed = write_jsonl(tmp_path / "changed.jsonl", [dict(rows[0], text=rows[0]["text"] + " تعديل")])
    for path, refused in ((same, False), (changed, True)):
        with Detector.in_memory(keep_texts=False) as detector:
            detector.add(Article(id=rows[0]["id"], text=rows[0]["text"], published="2016-01-02"))
            ahead = SketchAhead(readers, SketchConfig())
            try:
                with Dump([path], ReadReport(), run_rows=2, pool=readers, texts=False,
                          on_place=ahead.place) as dump:
                    articles = list(dump)
                    assert articles and all(a.text == "" for a in articles)
                    if refused:
                        with pytest.raises(DuplicateIdError):
                            detector.add_all(articles, ahead=ahead)
                    else:
                        detector.add_all(articles, ahead=ahead)
                        assert len(detector) == len(rows)
                        assert all(detector.record(r["id"]).shingles.size for r in rows)
            finally:
                ahead.close()
