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


EXPECTED_CREDITS = {
    "000": ["anadolu", "الخليج الجديد"],  # an Anadolu story carried by الخليج الجديد
    "001": ["الجزيرة"],
    "002": ["الوطن"],
    "003": ["rt"],
    "004": ["generic"],  # "موسكو- وكالات"
}


def test_credits_of_the_five_pages(pages: dict[str, str]) -> None:
    from dedup.text.clean import clean
    from dedup.text.credits import detect_credits

    found = {key[:3]: [c.label for c in detect_credits(clean(text).with_sources)] for key, text in pages.items()}
    assert found == EXPECTED_CREDITS
    # Cited, not credited: تاس (000), سبوتنيك (002's appended article), بلومبرج (004).
    everything = [c.label for text in pages.values() for part in (clean(text).main, *clean(text).embedded)
                  for c in detect_credits(part)]
    assert not {"tass", "sputnik", "bloomberg"} & set(everything)


def test_appended_articles_are_split_off_and_matched_as_their_own_story(pages: dict[str, str]) -> None:
    from dedup.text.clean import clean

    with_appended = [k for k, t in pages.items() if clean(t).embedded]
    assert [k[:3] for k in with_appended] == ["000", "001", "002"]
    with Detector.in_memory() as d:
        decisions = {k: d.add(Article(id=k, text=t, outlet="page", published="2024-11-20 10:00")) for k, t in
                     pages.items()}
        for key in with_appended:
            (segment,) = decisions[key].embedded
            assert segment.article_id == f"{key}#embedded-1" and segment.story_id != decisions[key].story_id
            # The appended article published on its own elsewhere: the segment joins its story
            # (named after it: a segment only re-displays an article), not the page's.
            alone = d.add(Article(id=f"{key}-alone", text=clean(pages[key]).embedded[0], outlet="other",
                                  published="2024-11-20 12:00"))
            story = d.story_of(segment.article_id)
            assert story.story_id == alone.story_id == f"{key}-alone"
            flags = {p.article_id: p.flags for p in story.provenance}
            assert "embedded" in flags[segment.article_id]
            assert d.record(segment.article_id).embedded_in == key
