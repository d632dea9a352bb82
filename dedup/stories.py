"""Clustering rule and canonical policy: pure structures over plain values.

Clustering works on the *match graph*: articles are nodes, and two articles are linked when
verification found one substantially derived from the other (see :mod:`dedup.match`).

1. A *compilation* (a round-up carrying several stories) is an article whose linked neighbours
   fall into two or more groups with no link between the groups. It stands alone, so that it does
   not merge the stories it carries.
2. Stories are the connected components of the links between the other articles.
3. A story is named after its earliest member (the first added).

The stories are a function of the links alone, so they do not depend on the order in which the
links were found; :class:`StoryGraph` keeps them up to date one article at a time, and a story
can grow, merge with another, or (when a member turns out to be a compilation) split.

Canonical policy (the same whatever the arrival order): the agency's own item, then an
agency-credited copy, then an article of its own before one appended to another page, then the
earliest published, then the most complete (most shingles), then the smallest id.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Update:
    """What adding one node changed: the nodes now in another story (the new node included),
    and every story whose membership may have changed."""

    moved: dict[int, int]
    stories: list[int]


_NONE: frozenset[int] = frozenset()


class StoryGraph:
    """Links between articles numbered 0, 1, 2, ... and the stories they form.

    *Leaves* are articles appended to another page (a re-display of an article published
    before): a leaf joins the story of the article it matches best, but its links show nothing
    about how other articles relate, so they never join two stories or make a compilation.

    >>> g = StoryGraph()
    >>> for node, links in [(0, []), (1, [0]), (2, []), (3, [2]), (4, [0, 1, 2, 3])]:
    ...     _ = g.add(node, links)
    >>> g.story(1), g.story(3), g.is_compilation(4), g.story(4)
    (0, 2, True, 4)
    >>> _ = g.add(5, [1, 2, 4])  # links the two groups around 4: they are one story after all
    >>> g.is_compilation(4), g.story(3), g.members(0)
    (False, 0, [0, 1, 2, 3, 4, 5])
    """

    def __init__(self) -> None:
        # Links between articles that are not leaves (one shared empty set for the many without).
        self._links: list[set[int] | frozenset[int]] = []
        # Leaf -> its best match so far as (similarity, article), None when it matches nothing:
        # only the best match decides a leaf's story, so the others are not kept.
        self._leaf: dict[int, tuple[float, int] | None] = {}
        self._leaves_of: dict[int, set[int]] = {}  # article -> the leaves whose best match it is
        self._compilation: set[int] = set()
        self._story: list[int] = []  # the earliest member of each node's story (leaves aside)
        self._members: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self._links)

    def add(self, node: int, links: Iterable[int], weights: Mapping[int, float] | None = None, *,
            leaf: bool = False) -> Update:
        """Add the next node with its links to earlier nodes, and say which stories changed.

        ``weights`` give the similarity of each link (a leaf joins its best match); ``leaf``
        marks an article appended to another page.
        """
        if node != len(self._links):
            raise ValueError(f"nodes are added in order: expected {len(self._links)}, got {node}")
        linked = {int(x) for x in links}
        if linked and (min(linked) < 0 or max(linked) >= node):
            raise ValueError(f"node {node} can only link to earlier nodes, got {sorted(linked)}")
        weight = weights or {}
        self._links.append(_NONE)
        self._story.append(node)
        self._members[node] = [node]
        if not linked and not leaf:  # a story of its own, and no leaf matches the new node yet
            return Update({node: node}, [node])
        if leaf:
            # Links between two leaves say nothing: each matches the articles themselves.
            best = min(((float(weight.get(x, 0.0)), x) for x in linked if x not in self._leaf),
                       key=lambda t: (-t[0], t[1]), default=None)
            self._leaf[node] = best
            if best is not None:
                self._leaves_of.setdefault(best[1], set()).add(node)
            moved: dict[int, int] = {node: node}
            stories = {node}
            self._place([node], moved, stories)
            return Update(moved, sorted(s for s in stories if s in self._members))
        structural = {x for x in linked if x not in self._leaf}
        for e in linked - structural:
            w, old = float(weight.get(e, 0.0)), self._leaf[e]
            if old is None or (-w, node) < (-old[0], old[1]):  # a better match than the leaf had
                if old is not None:
                    self._leaves_of[old[1]].discard(e)
                self._leaf[e] = (w, node)
                self._leaves_of.setdefault(node, set()).add(e)
        self._links[node] = structural or _NONE
        for x in structural:
            if self._links[x] is _NONE:
                self._links[x] = {node}
            else:
                self._links[x].add(node)  # type: ignore[union-attr]
        joined = self._joins_one_story(node, structural)
        if joined is not None:  # the usual case: a copy joins one story and changes nothing else
            bisect.insort(self._members[joined], node)
            del self._members[node]
            self._story[node] = joined
            leaves = linked - structural  # no other story changed: only leaves matching the node move
            if not leaves:
                return Update({node: joined}, [joined])
            update = Update({node: joined}, [joined])
        else:
            update, leaves_in_region = (self._recompute(self._region(node, structural)) if structural
                                        else (Update({node: node}, [node]), []))
            # Leaves follow the articles they match: place again those whose stories changed.
            leaves = (linked - structural) | set(leaves_in_region)
            for story in update.stories:
                for member in self._members.get(story, ()):
                    leaves |= self._leaves_of.get(member, set())
        moved, stories = dict(update.moved), set(update.stories)
        self._place(sorted(leaves), moved, stories)
        return Update(moved, sorted(s for s in stories if s in self._members))

    def _joins_one_story(self, node: int, linked: set[int]) -> int | None:
        """The story the new node simply joins, or None when anything else may change.

        That is: all its links go into one story and to no compilation, its own neighbours are
        linked among themselves, and each neighbour keeps its status: a neighbour with other
        neighbours stays one group exactly when the new node links to one of them too.
        """
        if not linked:
            return None
        story = self._story[next(iter(linked))]
        for x in linked:
            if self._story[x] != story or x in self._compilation or x in self._leaf:
                return None
            around = self._links[x]  # the node is among them already, and not among ``linked``
            if len(around) > 1 and linked.isdisjoint(around):
                return None
        if len(linked) > 1 and self._splits(node):
            return None
        return story

    def _region(self, node: int, linked: set[int]) -> set[int]:
        # Only the new node and its neighbours can change compilation status (a node's status
        # depends on the links among its own neighbours).
        region: set[int] = set()
        for x in (node, *linked):
            region.update(self._members[self._story[x]])
            was = x in self._compilation
            now = self._splits(x)
            if now:
                self._compilation.add(x)
            else:
                self._compilation.discard(x)
            if now != was:
                for y in self._links[x]:
                    region.update(self._members[self._story[y]])
        return region

    def _splits(self, node: int) -> bool:
        """Whether the node's neighbours form two or more groups with no link between them."""
        around = self._links[node]
        if len(around) < 2:
            return False
        start = min(around)
        seen = {start}
        todo = [start]
        while todo:
            x = todo.pop()
            for y in self._links[x] & around:  # (a set intersection walks the smaller of the two)
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
            if len(seen) == len(around):  # all reached: one group (copies often all link each other)
                return False
        return True

    def _recompute(self, region: set[int]) -> tuple[Update, list[int]]:
        """The stories of the region's articles (leaves left out: the caller places them)."""
        # Every story touching the region lies wholly inside it, so components can be found here.
        for x in region:
            self._members.pop(self._story[x], None)
        moved: dict[int, int] = {}
        roots: list[int] = []
        done: set[int] = set()
        leaves = [x for x in region if x in self._leaf]
        newest = len(self._story) - 1
        for x in sorted(region):
            if x in done or x in self._leaf:
                continue
            component = [x]
            done.add(x)
            if x not in self._compilation:
                todo = [x]
                while todo:
                    y = todo.pop()
                    for z in self._links[y]:
                        if z not in done and z not in self._compilation:
                            done.add(z)
                            component.append(z)
                            todo.append(z)
            component.sort()
            root = component[0]
            roots.append(root)
            self._members[root] = component
            for y in component:
                if self._story[y] != root or y == newest:
                    moved[y] = root
                self._story[y] = root
        return Update(moved, roots), leaves

    def _place(self, leaves: Iterable[int], moved: dict[int, int], stories: set[int]) -> None:
        """Put each leaf in the story of its best match (the most similar, then the earliest)."""
        for e in leaves:
            best = self._leaf[e]
            story = self._story[best[1]] if best is not None else e
            old = self._story[e]
            members = self._members.get(old)
            if members is not None and e in members and old != story:
                members.remove(e)
                if not members:
                    del self._members[old]
                stories.add(old)
            into = self._members.setdefault(story, [])
            if e not in into:
                bisect.insort(into, e)
            if story != old:
                moved[e] = story
            self._story[e] = story
            stories.add(story)

    def story(self, node: int) -> int:
        """The story of a node: the number of its earliest member (leaves aside)."""
        return self._story[node]

    def members(self, story: int) -> list[int]:
        """The members of a story, in the order they were added."""
        return self._members[story]

    def stories(self) -> list[int]:
        """Every story, in the order they were founded."""
        return sorted(self._members)

    def is_compilation(self, node: int) -> bool:
        return node in self._compilation

    def is_leaf(self, node: int) -> bool:
        return node in self._leaf


def stories_of(links: Sequence[tuple[int, int]], nodes: int, leaves: Iterable[int] = (),
               weights: Mapping[tuple[int, int], float] | None = None) -> list[int]:
    """The story of every node computed at once from the whole link list (the reference).

    ``weights`` maps a link (either order) to its similarity.
    """
    leaf = set(leaves)
    weight = weights or {}
    around: list[set[int]] = [set() for _ in range(nodes)]
    matches: dict[int, dict[int, float]] = {e: {} for e in leaf}
    for a, b in links:
        if a == b or (a in leaf and b in leaf):
            continue
        w = weight.get((a, b), weight.get((b, a), 0.0))
        if a in leaf:
            matches[a][b] = w
        elif b in leaf:
            matches[b][a] = w
        else:
            around[a].add(b)
            around[b].add(a)
    graph = StoryGraph()
    graph._links = [*around]
    graph._compilation = {x for x in range(nodes) if x not in leaf and graph._splits(x)}
    graph._story = list(range(nodes))
    graph._members = {x: [x] for x in range(nodes)}
    graph._recompute({x for x in range(nodes) if x not in leaf})
    story = list(graph._story)
    for e in leaf:
        targets = matches[e]
        story[e] = graph._story[min(targets, key=lambda x: (-targets[x], x))] if targets else e
    return story


@dataclass(frozen=True, slots=True, kw_only=True)
class CanonicalFacts:
    """What the canonical policy looks at for one member."""

    article_id: str
    outlet_is_agency: bool
    credited_agency: str | None
    published: str
    completeness: int
    embedded: bool = False

    def rank(self) -> tuple[int, int, int, str, int, str]:
        # Unknown publication times sort after every known one.
        return (
            0 if self.outlet_is_agency else 1,
            0 if self.credited_agency and self.credited_agency != "generic" else 1,
            1 if self.embedded else 0,
            self.published or "\uffff",
            -self.completeness,
            self.article_id,
        )


_REASONS = ("agency's own item", "agency-credited copy", "a page of its own (not appended to another)",
            "earliest published", "most complete", "smallest id")


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
