from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dedup.stories import CanonicalFacts, Neighbour, canonical_policy, place


def facts(
    i: str, agency: bool = False, credit: str | None = None, published: str = "", size: int = 10
) -> CanonicalFacts:
    return CanonicalFacts(article_id=i, outlet_is_agency=agency, credited_agency=credit, published=published,
                          completeness=size)


def test_agency_item_is_canonical_even_when_published_last() -> None:
    members = [facts("a", published="2015-07-21 08:00"), facts("b", credit="spa", published="2015-07-21 09:00"),
               facts("spa", agency=True, published="2015-07-21 23:00")]
    assert canonical_policy(members) == ("spa", "agency's own item")


def test_credited_copy_beats_earlier_uncredited_copy() -> None:
    members = [facts("a", published="2015-07-21 08:00"), facts("b", credit="afp", published="2015-07-21 09:00")]
    assert canonical_policy(members) == ("b", "agency-credited copy")


def test_generic_credit_is_not_an_agency_credit() -> None:
    members = [facts("a", published="2015-07-21 08:00"), facts("b", credit="generic", published="2015-07-21 09:00")]
    assert canonical_policy(members) == ("a", "earliest published")


def test_ties_fall_to_completeness_then_id() -> None:
    assert canonical_policy([facts("a", size=5), facts("b", size=9)]) == ("b", "most complete")
    assert canonical_policy([facts("b"), facts("a")]) == ("a", "smallest id")


def test_unknown_publication_time_ranks_after_known() -> None:
    assert canonical_policy([facts("a"), facts("b", published="2015-07-21 09:00")])[0] == "b"


member_strategy = st.builds(
    facts,
    i=st.text(alphabet="abcdef", min_size=1, max_size=3),
    agency=st.booleans(),
    credit=st.sampled_from([None, "spa", "afp", "generic"]),
    published=st.sampled_from(["", "2015-07-21 08:00", "2015-07-21 09:00", "2015-07-22 01:00"]),
    size=st.integers(0, 5),
)


@given(st.lists(member_strategy, min_size=1, max_size=8, unique_by=lambda f: f.article_id), st.randoms())
def test_canonical_choice_ignores_arrival_order(members: list[CanonicalFacts], rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(members)
    rnd.shuffle(shuffled)
    assert canonical_policy(members) == canonical_policy(shuffled)


def _never(a: str, b: str) -> bool:
    return False


def test_roundup_matching_two_unlinked_stories_is_a_compilation() -> None:
    neighbours = [Neighbour("x1", "X", 0.9, 0.3), Neighbour("y1", "Y", 0.8, 0.3)]
    placed = place(neighbours, {"X": 1, "Y": 1}, _never, 0.49)
    assert placed.kind == "compilation"


def test_neighbours_in_two_linked_stories_join_the_best() -> None:
    neighbours = [Neighbour("x1", "X", 0.9, 0.3), Neighbour("y1", "Y", 0.8, 0.3)]
    placed = place(neighbours, {"X": 1, "Y": 1}, lambda a, b: True, 0.49)
    assert (placed.kind, placed.story_id) == ("copy", "X")


def test_matching_one_member_of_a_large_story_does_not_join_it() -> None:
    placed = place([Neighbour("x1", "X", 0.95, 0.5)], {"X": 5}, _never, 0.49)
    assert placed.kind == "new"


def test_no_neighbours_founds_a_story() -> None:
    assert place([], {}, _never, 0.49).kind == "new"
