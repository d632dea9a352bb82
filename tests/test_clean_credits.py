"""Page cleaning and credit detection, one fixture file a case (tests/fixtures/clean, .../credits)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedup.text import credits
from dedup.text.clean import clean
from dedup.text.credits import AGENCIES, agency_of_outlet, detect_byline_credit, detect_credits

FIXTURES = Path(__file__).parent / "fixtures"
CLEAN_CASES = sorted((FIXTURES / "clean").glob("*.txt"))
CREDIT_CASES = sorted((FIXTURES / "credits").glob("*.txt"))


def _sections(path: Path) -> tuple[str, dict[str, str]]:
    why, _, rest = path.read_text(encoding="utf-8").partition("\n")
    parts: dict[str, str] = {}
    for chunk in rest.split("=== ")[1:]:
        name, _, body = chunk.partition("\n")
        parts[name.strip()] = body.strip("\n")
    return why.lstrip("# "), parts


@pytest.mark.parametrize("path", CLEAN_CASES, ids=[p.stem for p in CLEAN_CASES])
def test_cleaning_fixture(path: Path) -> None:
    why, parts = _sections(path)
    cleaned = clean(parts["page"])
    assert cleaned.main == parts["main"], why
    assert list(cleaned.embedded) == ([parts["embedded"]] if parts["embedded"] else []), why


@pytest.mark.parametrize("path", CREDIT_CASES, ids=[p.stem for p in CREDIT_CASES])
def test_credit_fixture(path: Path) -> None:
    why, _, rest = path.read_text(encoding="utf-8").partition("\n")
    header, _, text = rest.partition("---\n")
    fields = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in header.splitlines())
    expected = [] if fields["expect"] == "-" else fields["expect"].split(",")
    found = detect_credits(clean(text).with_sources, fields.get("byline", ""))
    assert [f"{c.label}@{c.where}" for c in found] == expected, why


def test_fixture_folders_are_not_empty() -> None:
    assert len(CLEAN_CASES) >= 8 and len(CREDIT_CASES) >= 15


def test_registry_has_the_agencies_outlets_credit() -> None:
    keys = {a.key for a in AGENCIES}
    assert len(keys) == len(AGENCIES) >= 25
    assert {"anadolu", "rt", "sputnik", "tass", "afp", "reuters", "ap", "dpa", "xinhua", "efe", "spa", "wam", "qna",
            "kuna", "bna", "ona", "mena", "sana", "petra", "nna", "ina", "wafa", "suna", "saba", "map", "aps", "tap",
            "irna"} <= keys


def test_an_agencys_own_outlet_or_site_is_recognised() -> None:
    assert agency_of_outlet("was") == "spa"
    assert agency_of_outlet("", "https://arabic.rt.com/world/1234") == "rt"
    assert agency_of_outlet("okaz", "https://www.okaz.com.sa/news") is None


def test_byline_reader_needs_a_whole_part() -> None:
    assert detect_byline_credit("الرياض - واس") is not None
    assert detect_byline_credit("واسط - علي حسين") is None  # a city that starts like واس


@given(st.text(max_size=300))
def test_credit_reading_never_fails_and_finds_each_source_once(text: str) -> None:
    found = detect_credits(text, text[:40])
    labels = [c.label for c in found]
    assert len(labels) == len(set(labels))


@given(st.text(max_size=400))
def test_cleaning_keeps_only_lines_of_the_page(text: str) -> None:
    cleaned = clean(text)
    lines = {line.strip() for line in text.splitlines()}
    assert all(line in lines for line in cleaned.main.splitlines())
    assert clean(cleaned.main).main == cleaned.main  # cleaning what is clean changes nothing


# A line's end: maybe a bracketed name, then dots, white space of every kind, and maybe more text.
_LINE_ENDS = st.tuples(st.sampled_from(["", "(", "[", "(("]), st.text(max_size=35),
                       st.sampled_from(["", ")", "]", "))"]),
                       st.text(alphabet=st.sampled_from(list(". \t\u00a0\u2003\u3000\x1c\x85\u200bx")), max_size=8))


@given(st.text(max_size=60), _LINE_ENDS)
def test_the_quick_look_for_a_closing_credit_passes_over_no_line_that_has_one(head: str,
                                                                                end: tuple[str, str, str, str]) -> None:
    line = head + "".join(end)
    if credits._CLOSING_PAREN.search(line) is not None:
        assert credits._may_close(line)


def test_the_quick_look_strips_what_the_closing_pattern_allows_after_the_bracket() -> None:
    allowed = {chr(c) for c in range(0x110000) if re.fullmatch(r"[.\s]", chr(c))}
    assert set(credits._AFTER_CLOSING) == allowed


def test_a_byline_gives_the_same_credits_each_time() -> None:
    first = detect_credits("نص الخبر", "الرياض - واس")
    assert [c.label for c in first] == ["spa"]
    assert detect_credits("نص الخبر", "الرياض - واس") == first


@given(st.text(alphabet=st.sampled_from(list("المصدر: رويترز(واس)-\n\r\u2028\x0b \t.أب")), max_size=300))
def test_the_credits_of_a_cleaned_page_are_read_from_its_lines_as_from_its_text(text: str) -> None:
    cleaned = clean(text)
    assert credits.credits_in_lines(cleaned.source_lines) == detect_credits(cleaned.with_sources)


@given(st.lists(st.integers(0, 30), max_size=6), st.sampled_from([" ", "  ", "\t", " \u00a0"]))
def test_an_appended_article_needs_forty_words_after_its_marker(counts: list[int], gap: str) -> None:
    """A marker line ("اقرأ أيضاً:") splits an appended article off only when at least 40 words
    follow it, however they are spread over the lines (counted a line at a time, up to 40)."""
    cleaning = importlib.import_module("dedup.text.clean")  # the module (dedup.text.clean is the function)
    lines = ["نص الخبر", "اقرأ أيضاً:", *(gap.join(["كلمة"] * k) for k in counts)]
    assert cleaning._appended_at(lines) == (1 if sum(counts) >= 40 else None)


@given(st.lists(st.sampled_from(["a", "ب", " ", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85",
                                  "\u2028", "\u2029", "\x1f", "\t"])).map("".join))
def test_cleaning_cuts_lines_where_splitlines_does(text: str) -> None:
    """Cleaning splits a page at "\\n" when that is its only line break: the lines are always
    those of str.splitlines."""
    cleaning = importlib.import_module("dedup.text.clean")  # the module (dedup.text.clean is the function)
    assert cleaning._lines(text) == text.splitlines()


def test_cleaning_knows_every_character_splitlines_cuts_at() -> None:
    cleaning = importlib.import_module("dedup.text.clean")  # the module (dedup.text.clean is the function)
    breaks = [chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) == 2]
    assert breaks and all(cleaning._lines(f"a{c}b") == ["a", "b"] for c in breaks)
