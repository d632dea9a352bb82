from __future__ import annotations

import dataclasses
import datetime
import platform
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from edits import appended, boilerplate, credited, first_half, house_spelling, new_headline
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import Article, DedupError, Detector, DuplicateIdError


def art(i: str, text: str, **kw: str | bool) -> Article:
    return Article(id=i, text=text, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("edit", [new_headline, boilerplate, first_half, house_spelling, credited],
                         ids=lambda f: f.__name__)
def test_outlet_edits_join_the_agency_story(stories: dict[str, str], edit) -> None:  # type: ignore[no-untyped-def]
    with Detector.in_memory() as d:
        for key, text in stories.items():
            d.add(art(key, text))
        decision = d.add(art("copy", edit(stories["diplomacy"])))
    assert decision.action == "copy"
    assert decision.story_id == "diplomacy"


def test_copy_with_another_article_appended_joins_the_first_story(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        d.add(art("summit", stories["summit"]))
        decision = d.add(art("page", appended(stories["summit"], stories["tech"])))
    assert (decision.action, decision.story_id) == ("copy", "summit")


def test_distinct_stories_stay_apart(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        decisions = d.add_many(art(k, t) for k, t in stories.items())
    assert [x.action for x in decisions] == ["new"] * len(stories)


def test_roundup_of_two_stories_does_not_merge_them(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        d.add(art("football", stories["football"]))
        d.add(art("health", stories["health"]))
        roundup = d.add(art("roundup", stories["football"] + "\n" + stories["health"]))
        later = d.add(art("football-copy", new_headline(stories["football"])))
    assert roundup.action == "compilation"
    assert roundup.story_id == "roundup"
    assert later.story_id == "football"


def test_agency_copy_arriving_last_becomes_canonical(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        d.add(art("paper1", new_headline(stories["weather"]), published="2015-07-21 08:00"))
        d.add(art("paper2", boilerplate(stories["weather"]), published="2015-07-21 07:00"))
        last = d.add(art("spa", stories["weather"], published="2015-07-21 09:00", outlet="spa",
                         outlet_is_agency=True))
        story = d.story(last.story_id)
    assert last.canonical_id == "spa"
    assert story.canonical_reason == "agency's own item"
    assert [p.article_id for p in story.provenance] == ["paper2", "paper1", "spa"]


def test_provenance_lists_outlet_url_credit_and_similarity(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        d.add(art("a", stories["tech"], outlet="okaz", url="https://okaz.example/1", published="2015-07-21 08:00"))
        d.add(art("b", first_half(stories["tech"]), outlet="sabq", byline="دبي - وام",
                  published="2015-07-21 09:00"))
        story = d.story_of("b")
    entry = {p.article_id: p for p in story.provenance}
    assert story.canonical_id == "b"  # credited to WAM
    assert entry["b"].credit == "wam"
    assert entry["a"].outlet == "okaz" and entry["a"].url == "https://okaz.example/1"
    assert entry["a"].containment == 1.0 and 0.3 < entry["a"].similarity < 0.7


def test_query_finds_the_story_without_adding(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        d.add_many(art(k, t) for k, t in stories.items())
        hits = d.query(first_half(stories["health"]))
        assert len(d) == len(stories)
    assert hits[0].story_id == "health"
    assert hits[0].containment == 1.0


def test_same_id_same_content_is_unchanged_other_content_is_refused(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        d.add(art("a", stories["tech"]))
        assert d.add(art("a", stories["tech"])).action == "unchanged"
        with pytest.raises(DuplicateIdError, match="'a'"):
            d.add(art("a", stories["health"]))
        assert len(d) == 1


@pytest.mark.parametrize("text", ["", "   \n\t ", "Breaking: markets rally as rates fall today in London", "x" * 10])
def test_empty_short_and_non_arabic_texts_are_accepted(text: str) -> None:
    with Detector.in_memory() as d:
        first = d.add(art("a", text))
        second = d.add(art("b", text))
    assert first.action == "new"
    if not text.strip() or len(text.split()) < 3:
        assert second.action == "new"  # too little text to call anything a copy


def test_ten_megabyte_text_is_processed(stories: dict[str, str]) -> None:
    big = (stories["summit"] + "\n") * (10_000_000 // len(stories["summit"].encode()))
    with Detector.in_memory() as d:
        d.add(art("big", big))
        decision = d.add(art("small", stories["summit"]))
    assert decision.story_id == "big"


def test_restart_continues_where_it_stopped(tmp_path: Path, stories: dict[str, str]) -> None:
    items = []
    for k, t in stories.items():
        items += [art(k, t), art(k + "-h", new_headline(t)), art(k + "-c", first_half(t))]
    items.append(art("roundup", stories["weather"] + stories["tech"]))
    with Detector.in_memory() as one:
        expected = [(d.story_id, d.action) for d in one.add_many(items)]
    with Detector.open(tmp_path) as first:
        got = [(d.story_id, d.action) for d in first.add_many(items[:8])]
    with Detector.open(tmp_path) as second:
        got += [(d.story_id, d.action) for d in second.add_many(items[8:])]
        assert len(second) == len(items)
    assert got == expected


def test_a_failing_batch_leaves_the_state_as_it_was(tmp_path: Path, stories: dict[str, str]) -> None:
    with Detector.open(tmp_path) as d:
        d.add(art("a", stories["tech"]))
    with Detector.open(tmp_path) as d:
        with pytest.raises(DuplicateIdError):
            d.add_many([art("b", stories["health"]), art("a", stories["summit"])])
        assert "b" not in d and len(d) == 1
    with Detector.open(tmp_path) as d:
        assert "a" in d and "b" not in d and len(d) == 1


def test_ctrl_c_inside_compiled_code_is_still_an_interruption_and_rolls_back(
        tmp_path: Path, stories: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # numba reports an exception raised while its code calls back into Python (a signal handler
    # running then) as a SystemError caused by it.
    def interrupted(*args: object, **kwargs: object) -> object:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher(<function band_table_add>) returned a result with an exception "
                              "set") from exc

    with Detector.open(tmp_path) as d:
        d.add(art("a", stories["tech"]))
        d.compile()
        monkeypatch.setattr(d._index, "add_batch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            d.add_many([art("b", stories["health"])])
        assert "b" not in d and len(d) == 1
        monkeypatch.setattr(d._index, "add_batch", lambda *a, **k: (_ for _ in ()).throw(SystemError("other")))
        with pytest.raises(SystemError, match="other"):  # any other SystemError stays what it is
            d.add_many([art("b", stories["health"])])


def test_closed_detector_says_how_to_reopen() -> None:
    d = Detector.in_memory()
    d.close()
    with pytest.raises(RuntimeError, match=r"Detector\.open"):
        d.add(art("a", "نص"))


def test_article_appended_after_read_also_line_is_split_off(stories: dict[str, str]) -> None:
    with Detector.in_memory() as d:
        d.add(art("football", stories["football"]))
        d.add(art("health", stories["health"]))
        page = d.add(art("page", appended(new_headline(stories["football"]), stories["health"])))
    assert (page.action, page.story_id) == ("copy", "football")


def _many(stories: dict[str, str]) -> list[Article]:
    items = []
    for k, t in stories.items():
        items += [art(k, t), art(k + "-h", new_headline(t)), art(k + "-c", first_half(t)),
                  art(k + "-s", house_spelling(boilerplate(t)))]
    items.append(art("roundup", stories["weather"] + "\n" + stories["tech"]))
    return items


def test_workers_and_chunk_size_do_not_change_decisions(stories: dict[str, str]) -> None:
    items = _many(stories)
    with Detector.in_memory() as one:
        expected = one.add_many(items)
    with Detector.in_memory() as two:
        got = two.add_many(items, workers=2, chunk_size=4)
    assert got == expected
    assert sum(d.action == "copy" for d in got) >= len(stories) * 3 - 1


def test_compiled_matching_gives_the_same_decisions_and_starts_by_itself_when_large(
        tmp_path: Path, stories: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    items = _many(stories)
    with Detector.in_memory() as plain:
        expected = plain.add_many(items, chunk_size=4)
        assert not plain.compiled
    with Detector.in_memory() as compiled:
        compiled.compile()
        assert compiled.add_many(items, chunk_size=4) == expected
    monkeypatch.setattr(Detector, "COMPILE_FROM", len(items) // 2)
    with Detector.in_memory() as switching:  # compiled kernels from the middle of the run on
        assert switching.add_many(items[: len(items) // 2], chunk_size=4) == expected[: len(items) // 2]
        assert not switching.compiled
        assert switching.add_many(items[len(items) // 2 :], chunk_size=4) == expected[len(items) // 2 :]
        assert switching.compiled
    with Detector.open(tmp_path) as stored:
        stored.add_many(items[: len(items) // 2], chunk_size=4)
    with Detector.open(tmp_path) as reopened:  # a state that large is replayed compiled
        assert reopened.compiled
        assert reopened.add_many(items[len(items) // 2 :], chunk_size=4) == expected[len(items) // 2 :]


def test_a_detector_that_keeps_no_display_fields_clusters_alike_and_refuses_to_show_them(
        stories: dict[str, str]) -> None:
    """A scan that writes only the items table keeps no titles, urls, bylines, credit texts or
    first-seen times: its decisions and columns are those of a detector that keeps them, and
    what would show them says they were not kept instead of showing them empty."""
    items = [dataclasses.replace(a, title=f"title {a.id}", url=f"https://example.com/{a.id}") for a in _many(stories)]
    fields = ("id", "action", "best_match_id", "similarity", "containment", "credit", "credit_where", "embedded_in")
    with Detector.in_memory(keep_texts=False) as full, Detector.in_memory(keep_texts=False, keep_details=False) as bare:
        assert bare.add_many(items) == full.add_many(items)
        assert list(bare.assignments()) == list(full.assignments())
        assert list(bare.brief_columns(fields)) == list(full.brief_columns(fields))
        assert full.record(items[0].id).title == items[0].title
        with pytest.raises(DedupError, match=r"keeps no display fields.*keep_details=True"):
            bare.record(items[0].id)
        with pytest.raises(DedupError, match="keeps no display fields"):
            bare.story_of(items[0].id)
    with pytest.raises(ValueError, match="keep_texts=False"):
        Detector.in_memory(keep_details=False)


@pytest.mark.parametrize("batch_rows", [1, 3, 1000])
def test_brief_columns_hold_what_brief_records_do(stories: dict[str, str], batch_rows: int) -> None:
    """The items table of a scan is built from columns: the same fields, stories and canonical
    ids as the records, whatever the batch size, and from any article on."""
    fields = ("id", "action", "best_match_id", "similarity", "credit", "embedded_in")
    with Detector.in_memory(keep_texts=False) as d:
        d.add_all(_many(stories))
        # a copy that outranks the story's first member (an agency's own item): the canonical changes
        first = next(iter(stories))
        d.add(art("agency-own", stories[first], outlet_is_agency=True))
        records = [(*(getattr(r, f) for f in fields), story, canonical) for r, story, canonical in d.brief_records()]
        for start in (0, 2):
            batches = list(d.brief_columns(fields, start, batch_rows))
            assert all(len(b["id"]) <= batch_rows for b in batches)
            columns = [[v for b in batches for v in b[name]] for name in (*fields, "story", "canonical")]
            assert list(zip(*columns, strict=True)) == records[start:]
    assert any(story != canonical for *_, story, canonical in records)


def test_sketches_computed_ahead_in_another_order_give_the_same_decisions(stories: dict[str, str]) -> None:
    from dedup.detector import SketchAhead, worker_pool

    items = _many(stories)
    changed = art(items[5].id, items[5].text + " وأضاف المتحدث تفاصيل جديدة")  # not what was sketched
    ordered = [*items[:5], changed, *items[6:]]

    def decided(d: Detector) -> list[tuple[str, str, str, float, str, str]]:
        # The content digest comes from the sketch: a sketch of other content would show.
        return [(r.id, r.content_hash, r.best_match_id or "", r.containment, story, canonical)
                for r, story, canonical in d.brief_records()]

    with Detector.in_memory(keep_texts=False) as d:
        d.add_all(ordered)
        expected = decided(d)
    with worker_pool(2) as pool, Detector.in_memory(keep_texts=False) as d:
        ahead = SketchAhead(pool, d.config.sketch, limit=len(items) - 3)  # the last few are left to add_all
        for start in range(len(items) - 1, -1, -3):  # met in reverse order, three at a time
            ahead.submit(items[max(start - 2, 0) : start + 1])
        assert d.add_all(ordered, chunk_size=4, ahead=ahead) == len(ordered)
        ahead.close()
        assert decided(d) == expected
    assert sum(row[0] != row[4] for row in expected) >= len(stories) * 3 - 1


def test_sketches_of_articles_read_back_from_the_dump_runs_give_the_same_decisions(
        tmp_path: Path, stories: dict[str, str]) -> None:
    """dedup scan over a large dump: the workers read the articles to sketch from the dump's
    sorted runs instead of being sent their texts; the decisions are the same."""
    import json
    from concurrent.futures import Executor, Future
    from typing import Any

    from dedup.detector import SketchAhead, worker_pool
    from dedup.dump import Dump, ReadReport

    items = _many(stories)
    path = tmp_path / "dump.jsonl"
    path.write_text("".join(json.dumps({"id": a.id, "text": a.text}, ensure_ascii=False) + "\n"
                            for a in reversed(items)), encoding="utf-8")

    def decided(d: Detector) -> list[tuple[str, str, str, float, str, str]]:
        return [(r.id, r.content_hash, r.best_match_id or "", r.containment, story, canonical)
                for r, story, canonical in d.brief_records()]

    with Dump([path], ReadReport()) as dump, Detector.in_memory(keep_texts=False) as d:
        d.add_all(dump)
        expected = decided(d)

    class Recording(Executor):
        def __init__(self, pool: Executor) -> None:
            self.pool, self.tasks = pool, []

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            self.tasks.append(fn.__name__)
            return self.pool.submit(fn, *args, **kwargs)

    with worker_pool(2) as pool, Detector.in_memory(keep_texts=False) as d:
        recording = Recording(pool)
        ahead = SketchAhead(recording, d.config.sketch)
        with Dump([path], ReadReport(), run_rows=5, on_place=ahead.place) as dump:  # sorted in runs
            d.add_all(dump, chunk_size=4, ahead=ahead)
        ahead.close()
        assert decided(d) == expected
    assert set(recording.tasks) == {"_sketch_places"}  # no text was sent to a worker
    assert sum(row[0] != row[4] for row in expected) >= len(stories) * 3 - 1


def test_a_pool_that_failed_while_sketching_ahead_fails_the_adding_and_adds_nothing(
        tmp_path: Path, stories: dict[str, str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from dedup.detector import SketchAhead
    from dedup.sketch import SketchConfig

    items = _many(stories)
    pool = ThreadPoolExecutor(1)
    pool.shutdown()  # e.g. a worker process died: the pool takes nothing more
    ahead = SketchAhead(pool, SketchConfig())
    ahead.submit(items)  # returns at once; the failure shows when the sketches are needed
    with Detector.open(tmp_path) as d:
        with pytest.raises(RuntimeError, match="shutdown"):
            d.add_all(items, chunk_size=4, ahead=ahead)
        assert len(d) == 0
    ahead.close()


def test_workers_refuse_a_changed_id_before_adding_anything(tmp_path: Path, stories: dict[str, str]) -> None:
    items = [*_many(stories), art("tech", "نص آخر مختلف تماما عن الخبر الأول")]
    with Detector.open(tmp_path) as d:
        with pytest.raises(DuplicateIdError):
            d.add_many(items, workers=2, chunk_size=4)
        assert len(d) == 0
    with Detector.open(tmp_path) as d:
        assert len(d) == 0


def test_a_failure_inside_a_batch_rolls_back_state_and_memory(tmp_path: Path, stories: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with Detector.open(tmp_path) as d:
        d.add(art("first", stories["tech"]))
        calls = 0
        original = d._add_one

        def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 3:
                raise OSError("disk full")
            return original(*args, **kwargs)

        monkeypatch.setattr(d, "_add_one", failing)
        with pytest.raises(OSError, match="disk full"):
            d.add_many(_many(stories)[4:10])
        monkeypatch.undo()
        assert len(d) == 1 and "first" in d  # memory agrees with the rolled-back store
        decision = d.add(art("again", new_headline(stories["tech"])))
        assert decision.story_id == "first"


def _halves(text: str) -> tuple[str, str]:
    words = text.split()
    return " ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2 :])


def test_a_later_copy_revokes_a_compilation_and_merges_the_stories_in_the_state(
    tmp_path: Path, stories: dict[str, str]
) -> None:
    import sqlite3

    head, tail = _halves(stories["football"])
    with Detector.open(tmp_path) as d:
        d.add_many([art("head", head), art("tail", tail)])
        full = d.add(art("full", stories["football"]))
        # The full text matches two articles that share nothing: on what is known, a round-up.
        assert full.action == "compilation"
        copy = d.add(art("copy", new_headline(stories["football"])))
        # A second full copy shows the halves are one story: all four join it.
        assert (copy.action, copy.story_id) == ("copy", "head")
        assert d.story("head").size == 4
        assert d.record("full").story_id == "head"
        with pytest.raises(KeyError, match="now in story 'head'"):
            d.story("tail")
    rows = sqlite3.connect(tmp_path / "dedup.sqlite").execute("SELECT id, story_id FROM articles").fetchall()
    assert dict(rows) == {"head": "head", "tail": "head", "full": "head", "copy": "head"}
    with Detector.open(tmp_path) as again:
        assert [s for _, s, _ in again.assignments()] == ["head"] * 4


def test_copies_published_far_apart_are_different_stories(stories: dict[str, str]) -> None:
    text = stories["weather"]
    with Detector.in_memory() as d:
        d.add(art("monday", text, published="2015-07-20 06:00"))
        near = d.add(art("thursday", new_headline(text), published="2015-07-23 23:00"))
        far = d.add(art("next-month", new_headline(text), published="2015-08-20 06:00"))
    assert (near.action, near.story_id) == ("copy", "monday")
    assert far.action == "new"
    with Detector.in_memory() as d:
        d.add(art("monday", text, published="2015-07-20 06:00"))
        undated = d.add(art("undated", boilerplate(text)))  # no time known: compared with all
    assert (undated.action, undated.story_id) == ("copy", "monday")


def test_provenance_flags_uncredited_cut_and_extended_copies(stories: dict[str, str]) -> None:
    text = stories["summit"]
    with Detector.in_memory() as d:
        d.add(art("agency", text, outlet="spa", published="2015-07-21 09:00"))  # SPA's own outlet
        d.add(art("cut", first_half(text), outlet="sabq", published="2015-07-21 10:00"))
        d.add(art("longer", text + "\n" + stories["tech"], outlet="okaz", byline="الرياض - واس",
                  published="2015-07-21 11:00"))
        story = d.story_of("cut")
    flags = {p.article_id: p.flags for p in story.provenance}
    assert story.canonical_id == "agency" and story.canonical_reason == "agency's own item"
    assert flags == {"agency": (), "cut": ("uncredited", "cut"), "longer": ("extended",)}
    credited = {p.article_id: (p.credit, p.credit_where) for p in story.provenance}
    assert credited["longer"] == ("spa", "byline")
    assert [p.article_id for p in story.provenance] == ["agency", "cut", "longer"]  # time order


def test_restart_rebuilds_the_shared_text_counts(tmp_path: Path, stories: dict[str, str]) -> None:
    from dedup import DetectorConfig, MatchConfig

    # With template_docs=2 the shared-text counts decide matches after a few articles, so a
    # restarted detector that forgot them would decide differently.
    config = DetectorConfig(match=MatchConfig(template_docs=2))
    items = _many(stories)
    with Detector.in_memory(config) as one:
        expected = [(d.story_id, d.action, d.containment) for d in one.add_many(items)]
    got = []
    for start in range(0, len(items), 5):
        with Detector.open(tmp_path, config) as d:
            got += [(x.story_id, x.action, x.containment) for x in d.add_many(items[start : start + 5])]
    assert got == expected


def test_shared_text_counts_only_the_recent_weeks(tmp_path: Path, stories: dict[str, str]) -> None:
    from dedup import DetectorConfig, MatchConfig

    config = DetectorConfig(match=MatchConfig(template_docs=2, template_window_days=14))
    text = stories["weather"]
    early = [art(f"t{n}", text, published=f"2015-07-0{n + 1} 06:00") for n in range(3)]
    late = [art("x1", text, published="2015-08-20 06:00"), art("x2", new_headline(text), published="2015-08-20 09:00")]
    with Detector.in_memory(config) as d:
        decisions = d.add_many([*early, *late])
    # Three copies in three days make the text a template then; six weeks on it is specific again.
    assert decisions[2].action == "new"
    assert (decisions[4].action, decisions[4].story_id) == ("copy", "x1")
    with Detector.open(tmp_path, config) as d:
        d.add_many(early)
    with Detector.open(tmp_path, config) as d:  # the same after a restart
        assert [x.action for x in d.add_many(late)] == [x.action for x in decisions[3:]]


def test_articles_out_of_the_template_window_leave_memory_and_are_still_matched(
        tmp_path: Path, stories: dict[str, str]) -> None:
    import datetime as dt

    from dedup import DetectorConfig, MatchConfig

    # One story a month: each leaves the template window (its shingles leave memory) before the
    # next. A backfilled copy dated next to the first, an undated copy and a page with an old
    # story appended still meet their stories, exactly as when nothing leaves memory.
    start = dt.datetime(2015, 1, 5, 6)
    keys = list(stories)
    items = [art(k, stories[k], outlet="spa", published=str(start + dt.timedelta(days=30 * n)), title=f"عنوان {k}",
                 url=f"https://spa.gov.sa/{k}", byline="الرياض - واس", fetched_at=str(start))
             for n, k in enumerate(keys)]
    items += [
        art("late", new_headline(stories[keys[0]]), published=str(start + dt.timedelta(days=1))),
        art("undated", boilerplate(stories[keys[1]])),
        art("page", appended(stories[keys[-1]], stories[keys[2]]), published=str(start + dt.timedelta(days=80))),
        art("cut", first_half(stories[keys[-1]]), published=str(start + dt.timedelta(days=81))),
    ]
    keep_all = DetectorConfig(match=MatchConfig(template_window_days=1_000_000))

    def result(d: Detector) -> tuple[list[tuple[str, str, str]], list[object]]:
        return list(d.assignments()), [s.provenance for s in d.stories()]

    with Detector.in_memory(keep_all) as d:
        d.add_many(items)
        expected = result(d)
    story = {article: s for article, s, _canonical in expected[0]}
    assert (story["late"], story["undated"], story["page#embedded-1"], story["cut"]) == (*keys[:3], "page")
    for keep_texts, compiled, chunk_size in ((True, False, 1000), (False, False, 1000), (False, True, 1000),
                                             (False, True, 2)):
        # Without texts, display fields go to disk too. Compiled kernels count and verify a batch
        # at once: sets archived during the batch are still read in memory, those archived by
        # an earlier batch (small chunks) are read back from the archive first.
        with Detector.in_memory(keep_texts=keep_texts) as d:
            if compiled:
                d.compile()
            d.add_many(items, chunk_size=chunk_size)
            assert len(d._archive) > 0  # the archive is really used
            assert result(d) == expected
            assert d.record(keys[0]).url == f"https://spa.gov.sa/{keys[0]}" and d.record(keys[0]).shingles.size
    for compiled in (False, True):
        state = tmp_path / f"compiled-{compiled}"
        with Detector.open(state) as d:
            d.add_many(items[:-3])
        with Detector.open(state) as d:  # archived from the store after a restart
            if compiled:
                d.compile()
            d.add_many(items[-3:])
            assert len(d._archive) > 0 and result(d) == expected


def test_an_appended_article_is_matched_within_the_embedded_window_only(stories: dict[str, str]) -> None:
    # An article appended to a page is compared with the articles of 30 days around the page.
    text, page_text = stories["summit"], stories["tech"]
    for days_later, joins in ((20, True), (60, False)):
        with Detector.in_memory() as d:
            d.add(art("old", text, published="2015-03-01 08:00"))
            page = d.add(art("page", appended(page_text, text), published=f"2015-0{3 + days_later // 30}-"
                                                                           f"{1 + days_later % 30:02d} 08:00"))
            segment = page.embedded[0]
        assert (segment.story_id == "old") is joins, (days_later, segment)


def test_a_later_copy_finds_an_appended_article_only_near_its_page(stories: dict[str, str]) -> None:
    # An appended article has no date of its own: later articles meet it as if it were published
    # with its page (within `window_days`), not at any distance in time.
    text, page_text = stories["summit"], stories["tech"]
    for copy_day, meets in (("2015-03-03", True), ("2015-04-20", False)):
        with Detector.in_memory() as d:
            d.add(art("page", appended(page_text, text), published="2015-03-01 08:00"))
            copy = d.add(art("copy", new_headline(text), published=f"{copy_day} 08:00"))
            segment_story = d.record("page#embedded-1").story_id
        assert copy.action == "new"  # an appended article founds no story for others to join
        # A leaf follows its best match: the later copy, when it met it.
        assert (segment_story == "copy") is meets, copy_day
        assert segment_story in ("copy", "page#embedded-1")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 40), min_size=1, max_size=5), st.booleans(), st.integers(0, 3)),
                max_size=40))
def test_live_shingle_sets_read_back_what_was_appended_across_moves(
        steps: list[tuple[list[int], bool, int]]) -> None:
    """Sets appended one at a time or a batch at a time (as the compiled matcher keeps them) are
    read back as they were, while the array moves (into arrays that earlier moves left, too)
    and its index of ends grows; a set read stays as it was until the array next moves."""
    import numpy as np

    from dedup.detector import _LiveShingles

    with mock.patch.object(_LiveShingles, "_MIN", 4):  # tiny, so the array moves often
        live = _LiveShingles()
        live._ends = np.empty(1, dtype=np.int64)  # and its index of ends grows often
        kept: list[np.ndarray] = []
        handed_out: list[tuple[np.ndarray, np.ndarray]] = []
        for sizes, batched, releasing in steps:
            batch = [np.arange((len(kept) + i) * 100, (len(kept) + i) * 100 + size, dtype=np.uint32)
                     for i, size in enumerate(sizes)]
            before = live.sets
            if batched:
                live.extend(batch)
            else:
                for values in batch:
                    live.append(values)
            if live.sets is not before:  # moved: what was read before may be overwritten later
                handed_out.clear()
            for values in batch:
                kept.append(values)
                handed_out.append((live.get(len(kept) - 1), values))
            before = live.sets
            live.release(min(live.first + releasing, len(kept)))
            if live.sets is not before:
                handed_out.clear()
            assert all(view.tolist() == values.tolist() for view, values in handed_out)
            for seq in range(live.first, len(kept)):
                assert live.get(seq).tolist() == kept[seq].tolist()
                ends = live.ends
                assert live.sets[(ends[seq - 1] if seq else 0) - live.base : ends[seq] - live.base].tolist() == \
                    kept[seq].tolist()


def test_a_move_reuses_a_spare_array_that_has_room_for_a_quarter_more() -> None:
    """Fresh memory is slow to touch the first time: a move goes into the array an earlier
    move left when it has room for the live sets and a quarter as many more, not only half."""
    import numpy as np

    from dedup.detector import _LiveShingles

    with mock.patch.object(_LiveShingles, "_MIN", 4):
        live = _LiveShingles()
        live.extend([np.arange(100, dtype=np.uint32)])
        spare = np.empty(130, dtype=np.uint32)  # room for 100 and 30 more: a quarter, not half
        live._spare = spare
        live._move(100)
        assert live.sets is spare
        assert live.get(0).tolist() == list(range(100))
        live._spare = small = np.empty(120, dtype=np.uint32)  # less than a quarter more: a new array
        live._move(100)
        assert live.sets is not small and live.sets.size >= 150
        assert live.get(0).tolist() == list(range(100))


def test_a_record_keeps_its_shingles_while_the_detector_goes_on() -> None:
    """A record's shingle set is the caller's: the memory the detector reads live sets from is
    reused as it moves, and that must not change a set handed out before."""
    from dedup.detector import _LiveShingles

    words = [f"كلمة{i}" for i in range(400)]
    with mock.patch.object(_LiveShingles, "_MIN", 4), Detector.in_memory() as d:  # tiny: moves often
        kept = {}
        for i in range(60):  # a day apart: older articles leave the template window, and the array shrinks
            day = datetime.date(2024, 1, 1) + datetime.timedelta(days=i)
            d.add(Article(id=f"a{i}", text=" ".join(words[i * 5 : i * 5 + 40]), published=day.isoformat()))
            shingles = d.record(f"a{i}").shingles
            kept[i] = (shingles, shingles.tolist())
        assert d._live._spare is not None  # moves left memory to reuse
        assert all(shingles.tolist() == values == d.record(f"a{i}").shingles.tolist()
                   for i, (shingles, values) in kept.items())


_EDITS = (lambda t: t, new_headline, first_half, boilerplate, house_spelling)


@settings(max_examples=30, deadline=None)
@given(plan=st.lists(st.tuples(st.integers(0, 5), st.integers(0, len(_EDITS) - 1),
                               st.one_of(st.none(), st.integers(0, 40)), st.booleans()), min_size=2, max_size=24),
       chunk_size=st.integers(1, 8))
def test_compiled_batches_count_and_verify_as_one_article_at_a_time(
        stories: dict[str, str], plan: list[tuple[int, int, int | None, bool]], chunk_size: int) -> None:
    from dedup import DetectorConfig, MatchConfig

    # A short template window and text shared across stories: articles leave the window inside
    # a batch and between batches, dated or not, pages carry appended articles.
    config = DetectorConfig(match=MatchConfig(template_window_days=4, window_days=2, embedded_window_days=6,
                                              template_docs=2))
    keys = sorted(stories)
    items = []
    for n, (story, edit, day, page) in enumerate(plan):
        text = _EDITS[edit](stories[keys[story]])
        if page:
            text = appended(text, stories[keys[(story + 1) % len(keys)]])
        published = "" if day is None else f"2016-01-{1 + day % 28:02d} 0{day % 10}:00"
        items.append(art(f"a{n}", text, published=published))
    with Detector.in_memory(config, keep_texts=False) as plain:
        expected = plain.add_many(items, chunk_size=chunk_size)
        assigned = list(plain.assignments())
    with Detector.in_memory(config, keep_texts=False) as compiled:
        compiled.compile()
        assert compiled.add_many(items, chunk_size=chunk_size) == expected
        assert list(compiled.assignments()) == assigned


_FREED_AND_TAKEN_AGAIN = """
import resource, sys
if sys.argv[1] == "keep":
    from dedup.detector import keep_freed_memory
    keep_freed_memory()
def batch():  # buffers of 200 KB (past glibc's first mmap threshold), 20 MB in all, then freed
    held = [bytes(200_000) for _ in range(100)]
    del held
for _ in range(3):
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="keep_freed_memory tunes glibc's allocator (elsewhere it does nothing)")
def test_a_process_that_keeps_freed_memory_takes_it_again_without_page_faults() -> None:
    """keep_freed_memory (the scan's processes and its workers): a batch's 20 MB of buffers,
    freed and made again, come back from the heap instead of fresh pages; by default glibc
    gives the heap's top back to the system and every page faults again."""
    faults = {way: int(subprocess.run([sys.executable, "-c", _FREED_AND_TAKEN_AGAIN, way], capture_output=True,
                                      text=True, check=True).stdout) for way in ("default", "keep")}
    assert faults["keep"] < 50 < faults["default"], faults
