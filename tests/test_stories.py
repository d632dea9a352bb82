from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dedup.stories import CanonicalFacts, StoryGraph, canonical_policy, stories_of


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


def build(links: dict[int, list[int]], nodes: int) -> StoryGraph:
    graph = StoryGraph()
    for node in range(nodes):
        graph.add(node, links.get(node, []))
    return graph


def test_roundup_linked_to_two_unlinked_stories_is_a_compilation_and_stands_alone() -> None:
    # 0-1 one story, 2-3 another; 4 carries both (so it matches all four).
    graph = build({1: [0], 3: [2], 4: [0, 1, 2, 3]}, 5)
    assert graph.is_compilation(4)
    assert [graph.story(n) for n in range(5)] == [0, 0, 2, 2, 4]


def test_roundup_whose_neighbours_are_linked_joins_their_story() -> None:
    graph = build({1: [0], 2: [0, 1]}, 3)
    assert not graph.is_compilation(2)
    assert graph.members(0) == [0, 1, 2]


def test_a_later_article_that_links_the_groups_merges_them_and_revokes_the_compilation() -> None:
    graph = build({1: [0], 3: [2], 4: [0, 1, 2, 3]}, 5)
    update = graph.add(5, [1, 2, 4])  # a copy of 4 that also matches 1 and 2: the groups are one story
    assert not graph.is_compilation(4)
    assert graph.members(0) == [0, 1, 2, 3, 4, 5]
    assert update.moved == {2: 0, 3: 0, 4: 0, 5: 0}


def test_a_story_splits_when_a_member_turns_out_to_be_a_compilation() -> None:
    graph = build({1: [0], 2: [0, 1]}, 3)
    assert graph.members(0) == [0, 1, 2]
    # 3 matches 2 and nothing else of the story: 2's neighbours now fall into unlinked groups.
    update = graph.add(3, [2])
    assert graph.is_compilation(2)
    assert [graph.story(n) for n in range(4)] == [0, 0, 2, 3]
    assert update.moved == {2: 2, 3: 3}


def test_no_links_founds_a_story_named_after_itself() -> None:
    graph = build({}, 2)
    assert (graph.story(0), graph.story(1)) == (0, 1)


def test_links_only_to_earlier_nodes() -> None:
    graph = StoryGraph()
    graph.add(0, [])
    try:
        graph.add(1, [1])
    except ValueError as exc:
        assert "earlier" in str(exc)
    else:
        raise AssertionError("a link to itself was accepted")


@st.composite
def link_lists(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    nodes = draw(st.integers(1, 14))
    pairs = [(a, b) for b in range(nodes) for a in range(b)]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=30)) if pairs else []
    return nodes, chosen


Case = tuple[int, list[tuple[int, int]]]


@given(link_lists(), st.sets(st.integers(0, 13)), st.randoms())
def test_stories_kept_one_node_at_a_time_equal_stories_computed_at_once(case: Case, leaves: set[int],
                                                                        rnd) -> None:  # type: ignore[no-untyped-def]
    nodes, links = case
    leaves = {x for x in leaves if x < nodes}
    weights = {link: rnd.choice([0.3, 0.5, 0.9, 1.0]) for link in links}
    earlier: dict[int, dict[int, float]] = {}
    for a, b in links:
        earlier.setdefault(b, {})[a] = weights[(a, b)]
    graph = StoryGraph()
    for node in range(nodes):
        graph.add(node, earlier.get(node, {}), earlier.get(node, {}), leaf=node in leaves)
    assert [graph.story(n) for n in range(nodes)] == stories_of(links, nodes, leaves, weights)
    for story in graph.stories():
        assert all(graph.story(m) == story for m in graph.members(story))
        assert graph.members(story) == sorted(graph.members(story))
        plain = [m for m in graph.members(story) if not graph.is_leaf(m)]
        assert (plain or graph.members(story))[0] == story  # named after its earliest article (leaves aside)
    assert sorted(m for s in graph.stories() for m in graph.members(s)) == list(range(nodes))


def test_a_leaf_joins_its_best_match_and_never_merges_stories() -> None:
    graph = StoryGraph()
    graph.add(0, [])
    graph.add(1, [])
    # A page's appended article matching both 0 (best) and 1 joins 0's story and merges nothing.
    graph.add(2, {0: 0.9, 1: 0.6}, {0: 0.9, 1: 0.6}, leaf=True)
    assert [graph.story(n) for n in range(3)] == [0, 1, 0]
    # A later article matching the leaf only: the leaf moves to it if it matches it best.
    graph.add(3, {2: 1.0}, {2: 1.0})
    assert (graph.story(2), graph.story(3), graph.members(3)) == (3, 3, [2, 3])


@given(link_lists(), st.randoms())
def test_stories_do_not_depend_on_the_order_links_are_listed(case: Case, rnd) -> None:  # type: ignore[no-untyped-def]
    nodes, links = case
    shuffled = [(b, a) if rnd.random() < 0.5 else (a, b) for a, b in links]
    rnd.shuffle(shuffled)
    assert stories_of(shuffled, nodes) == stories_of(links, nodes)
