"""Clustering rule and canonical policy: pure functions over plain values.

Clustering (one article at a time, in time order):

1. *Neighbours* are the existing articles the new one overlaps with: template-aware containment
   >= threshold and at least ``min_shared`` specific shingles in common.
2. If the neighbours fall in two or more stories and form two or more groups with no link
   between them (a link: same story, or themselves neighbours), the article is a *compilation*
   (a round-up carrying several stories). It gets a story of its own instead of merging them.
3. Otherwise it joins the story holding its best neighbour among the stories where it matches
   more than ``majority`` of the members checked; a story that it matches only through one
   member of many is not its story (this stops chaining through round-ups and templates).
4. With no such story it founds a new one.

Canonical policy (the same whatever the arrival order): the agency's own item, then an
agency-credited copy, then the earliest published, then the most complete (most shingles),
then the smallest id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Neighbour:
    article_id: str
    story_id: str
    containment: float
    jaccard: float


@dataclass(frozen=True, slots=True)
class Placement:
    kind: Literal["new", "copy", "compilation"]
    story_id: str | None
    best: Neighbour | None


def place(
    neighbours: Sequence[Neighbour],
    checked_per_story: Mapping[str, int],
    linked: Callable[[str, str], bool],
    majority: float,
) -> Placement:
    """Decide where a new article goes, given its verified neighbours.

    ``checked_per_story`` says how many members of each candidate story were verified;
    ``linked(a, b)`` says whether two existing articles are neighbours of each other.
    """
    if not neighbours:
        return Placement("new", None, None)
    by_story: dict[str, list[Neighbour]] = {}
    for n in neighbours:
        by_story.setdefault(n.story_id, []).append(n)
    if len(by_story) >= 2 and _components(neighbours, linked) >= 2:
        return Placement("compilation", None, _best(neighbours))
    eligible = [
        _best(found)
        for story, found in by_story.items()
        if len(found) > majority * checked_per_story.get(story, len(found))
    ]
    if not eligible:
        return Placement("new", None, _best(neighbours))
    best = _best(eligible)
    return Placement("copy", best.story_id, best)


def _best(neighbours: Sequence[Neighbour]) -> Neighbour:
    return min(neighbours, key=lambda n: (-n.containment, -n.jaccard, n.story_id, n.article_id))


def _components(neighbours: Sequence[Neighbour], linked: Callable[[str, str], bool]) -> int:
    parent = {n.article_id: n.article_id for n in neighbours}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ordered = sorted(neighbours, key=lambda n: n.article_id)
    for i, x in enumerate(ordered):
        for y in ordered[i + 1 :]:
            rx, ry = find(x.article_id), find(y.article_id)
            if rx != ry and (x.story_id == y.story_id or linked(x.article_id, y.article_id)):
                parent[rx] = ry
    return len({find(n.article_id) for n in neighbours})


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalFacts:
    """What the canonical policy looks at for one member."""

    article_id: str
    outlet_is_agency: bool
    credited_agency: str | None
    published: str
    completeness: int

    def rank(self) -> tuple[int, int, str, int, str]:
        # Unknown publication times sort after every known one.
        return (
            0 if self.outlet_is_agency else 1,
            0 if self.credited_agency and self.credited_agency != "generic" else 1,
            self.published or "\uffff",
            -self.completeness,
            self.article_id,
        )


_REASONS = ("agency's own item", "agency-credited copy", "earliest published", "most complete", "smallest id")


def canonical_policy(members: Sequence[CanonicalFacts]) -> tuple[str, str]:
    """The canonical member of a story and why it was chosen.

    >>> a = CanonicalFacts(article_id="b", outlet_is_agency=False, credited_agency=None,
    ...                    published="2015-07-21 10:00", completeness=50)
    >>> spa = CanonicalFacts(article_id="z", outlet_is_agency=True, credited_agency=None,
    ...                      published="2015-07-21 12:00", completeness=40)
    >>> canonical_policy([a, spa])
    ('z', "agency's own item")
    """
    if not members:
        raise ValueError("a story has at least one member")
    ranked = sorted(members, key=CanonicalFacts.rank)
    first = ranked[0]
    if len(ranked) == 1:
        return first.article_id, "only member"
    second = ranked[1].rank()
    for reason, mine, theirs in zip(_REASONS, first.rank(), second, strict=True):
        if mine != theirs:
            return first.article_id, reason
    return first.article_id, _REASONS[-1]
