"""Value types that cross the library boundary: Article in, Decision and Story out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

_T = TypeVar("_T")


def positional(cls: type[_T]) -> Callable[..., _T]:
    """A constructor of a frozen, slotted dataclass taking every field in order, for values
    that are known to be right (hot paths that build one object an article). It sets the slots
    directly: a frozen class's own ``__init__`` sets each field through ``object.__setattr__``,
    two to three times slower. No defaults are filled in and ``__post_init__`` does not run.

    >>> positional(Article)("a1", "نص", "", "", "", "", "", "", False) == Article(id="a1", text="نص")
    True
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    scope.update({f"_set_{name}": getattr(cls, name).__set__ for name in names})
    lines = [f"def build({', '.join(names)}):", "    _obj = _new(_cls)",
             *(f"    _set_{name}(_obj, {name})" for name in names), "    return _obj"]
    exec("\n".join(lines), scope)  # the code is built from the class's own field names
    build: Callable[..., _T] = scope["build"]
    return build


#: What the id of an article appended to a page adds to the page's id (``PAGE#embedded-1``).
EMBEDDED_MARK = "#embedded-"


@dataclass(frozen=True, slots=True, kw_only=True)
class Article:
    """One news item as the detector sees it.

    Only ``id`` and ``text`` are required. ``published`` and ``fetched_at`` are ISO-8601 strings
    (``2015-07-21 02:51:32`` or ``2015-07-21T02:51:32+03:00``); they order the articles and rank
    canonical copies, and are compared as text, so keep one form within a state.

    >>> Article(id="a1", text="نص الخبر").outlet
    ''
    """

    id: str
    text: str
    title: str = ""
    url: str = ""
    outlet: str = ""
    published: str = ""
    byline: str = ""
    fetched_at: str = ""
    outlet_is_agency: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Article.id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str):
            raise ValueError(f"Article.text must be a string (article {self.id!r}), got {type(self.text).__name__}")


Action = Literal["new", "copy", "compilation", "unchanged"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What the detector decided for one article when it was added.

    ``action`` is ``new`` (founded a story), ``copy`` (joined an existing story), ``compilation``
    (carries two or more stories that are not copies of each other, so it stands alone rather than
    merge them), or ``unchanged`` (the same id and content were added before).
    ``similarity`` is the word-shingle Jaccard and ``containment`` the template-aware containment
    with ``best_match_id``; both are 0.0 when there is no match. A story can grow, merge or split
    as later articles arrive: :meth:`Detector.story_of` gives an article's story now.
    """

    article_id: str
    story_id: str
    action: Action
    canonical_id: str
    best_match_id: str | None = None
    similarity: float = 0.0
    containment: float = 0.0
    embedded: tuple[Decision, ...] = ()  # articles appended to this page, split off and matched on their own

    @property
    def is_new_story(self) -> bool:
        return self.action in ("new", "compilation")


FLAGS = ("uncredited", "cut", "extended", "embedded")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenanceEntry:
    """One carrier of a story: who, when, where from, under which credit, how similar.

    ``credit`` is the original source the article credits (an agency key such as ``spa``,
    ``generic`` for "وكالات", or the name of another outlet), ``credit_where`` where it was read
    (``byline``, ``dateline``, ``source-line``, ``closing``), ``credit_via`` the outlets it passed
    through ("الخليج الجديد"). ``flags``: ``uncredited`` (a copy that names no source in a story
    whose source is known), ``cut`` (shorter than the canonical copy and contained in it),
    ``extended`` (longer than the canonical copy), ``embedded`` (an article appended to another
    page, ``embedded_in``).
    """

    article_id: str
    outlet: str
    url: str
    title: str
    published: str
    fetched_at: str
    credit: str
    credit_where: str = ""
    credit_via: str = ""
    is_canonical: bool
    similarity: float
    containment: float
    flags: tuple[str, ...] = ()
    embedded_in: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Story:
    """A story cluster with its canonical copy and provenance (members in time order)."""

    story_id: str
    canonical_id: str
    canonical_reason: str
    provenance: tuple[ProvenanceEntry, ...] = field(default_factory=tuple)

    @property
    def size(self) -> int:
        return len(self.provenance)

    @property
    def outlets(self) -> tuple[str, ...]:
        return tuple(sorted({p.outlet for p in self.provenance if p.outlet}))
