from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dedup.text.normalize import normalize

CASES = sorted((Path(__file__).parent / "fixtures" / "normalize").glob("*.txt"))


def _case(path: Path) -> tuple[str, str, str]:
    why, given_text, expected = path.read_text(encoding="utf-8").split("\n")[:3]
    return why.lstrip("# "), given_text, expected


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_normalization_fixture(path: Path) -> None:
    why, given_text, expected = _case(path)
    assert normalize(given_text) == expected, why


def test_fixture_folder_is_not_empty() -> None:
    assert len(CASES) >= 10


arabic_heavy = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
        st.characters(min_codepoint=0xFB50, max_codepoint=0xFEFF),
        st.sampled_from(" \n\t.,،؛؟«»\u200c\u200f\u0640AaZzİß0123"),
    ),
    max_size=200,
)


@given(arabic_heavy)
def test_normalization_is_idempotent_on_arabic_text(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(st.text(max_size=200))
def test_normalization_is_idempotent_on_any_text(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@given(arabic_heavy)
def test_normalized_text_has_no_diacritics_tatweel_or_arabic_punctuation(text: str) -> None:
    out = normalize(text)
    assert not any(0x064B <= ord(c) <= 0x065F or c in "\u0640،؛؟«»" for c in out)


# Characters of the one-pass table (ASCII, Latin-1, Arabic, general punctuation) and a few outside.
_ONE_PASS_HEAVY = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x0600, max_codepoint=0x06FF),
        st.characters(max_codepoint=0xFF),
        st.characters(min_codepoint=0x2000, max_codepoint=0x206F),
        st.sampled_from("\ufeff\u0653\u0654\u0655ﻻİµ"),
    ),
    max_size=120,
)


@given(_ONE_PASS_HEAVY)
@example("إِنَّ الْأَمْرَ — «هام»\n\tفي ٢٠٢٤ Ça va ½")
@example("ا\u0654ب")  # a hamza that NFKC composes with the alef before it: not the one-pass route
def test_normalize_takes_the_one_pass_route_only_where_it_gives_the_same(text: str) -> None:
    from dedup.text.normalize import normalized_words

    assert normalize(text) == " ".join(normalized_words(text))

