"""The five real scraped pages in ../shared/corpus/pages (skipped where ../shared is absent)."""

from __future__ import annotations

import itertools

import pytest
from conftest import shared_path
from edits import appended, boilerplate, first_half, house_spelling, new_headline

from dedup import Article, Detector


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    folder = shared_path("corpus", "pages")
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("0*.txt"))}


def test_no_two_pages_share_a_story(pages: dict[str, str]) -> None:
    assert len(pages) == 5
    with Detector.in_memory() as d:
        decisions = d.add_many(Article(id=k, text=t) for k, t in pages.items())
    assert {x.story_id for x in decisions} == set(pages)


@pytest.mark.parametrize("edit", [new_headline, boilerplate, first_half, house_spelling, "appended"],
                         ids=lambda e: e if isinstance(e, str) else e.__name__)
def test_each_page_joins_its_outlet_style_copy(pages: dict[str, str], edit) -> None:  # type: ignore[no-untyped-def]
    keys = list(pages)
    with Detector.in_memory() as d:
        d.add_many(Article(id=k, text=t) for k, t in pages.items())
        for key, other in zip(keys, itertools.islice(itertools.cycle(keys), 1, None), strict=False):
            text = appended(pages[key], first_half(pages[other])) if edit == "appended" else edit(pages[key])
            decision = d.add(Article(id=f"{key}-copy", text=text))
            assert decision.story_id == key, (key, decision)
