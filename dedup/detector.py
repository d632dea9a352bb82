"""The engine: Article in, Decision out, stories kept with their canonical copy and provenance.

The daemon, the CLI and ingestion code all go through :class:`Detector`, so they give the same
clusters for the same articles in the same order.
"""

from __future__ import annotations

import hashlib
import itertools
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

from dedup._errors import DuplicateIdError
from dedup._model import Article, Decision, ProvenanceEntry, Story
from dedup.match import BandIndex, MatchConfig, Overlap, SharedTextCounter, check_banding, overlap, overlap_many
from dedup.sketch import Signature, Signer, SketchConfig
from dedup.store import SQLiteStore, StoredArticle
from dedup.stories import CanonicalFacts, Neighbour, canonical_policy, place
from dedup.text.clean import main_segment
from dedup.text.credits import Credit, detect_byline_credit
from dedup.text.shingles import HashArray, shingle_hashes, shingle_sets, word_hashes


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorConfig:
    """The whole configuration: how texts become signatures, and how matches are decided."""

    sketch: SketchConfig = field(default_factory=SketchConfig)
    match: MatchConfig = field(default_factory=MatchConfig)


@dataclass(frozen=True, slots=True)
class StoryMatch:
    """A story near a queried text (from :meth:`Detector.query`)."""

    story_id: str
    canonical_id: str
    best_match_id: str
    containment: float
    similarity: float


@dataclass(slots=True)
class _Member:
    row: StoredArticle
    facts: CanonicalFacts


@dataclass(frozen=True, slots=True)
class Sketch:
    """What the pure, parallelizable steps compute for one article."""

    shingles: HashArray
    signature: Signature
    digest: str
    credit: Credit | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """An article with its sketch."""

    article: Article
    sketch: Sketch

    @property
    def shingles(self) -> HashArray:
        return self.sketch.shingles

    @property
    def signature(self) -> Signature:
        return self.sketch.signature


def sketch_many(articles: list[Article], config: SketchConfig) -> list[Sketch]:
    """Clean, shingle and sign a batch, hash its content and read its credits.

    Pure (a function of the articles and the configuration), so it can run in worker processes;
    only what it returns crosses back, not the articles.
    """
    words = [word_hashes(main_segment(a.text), config.hash_seed) for a in articles]
    shingles = shingle_sets(words, config.shingle_words)
    signatures = _signer(config).sign_many(shingles)
    return [
        Sketch(s, signatures[i], content_hash(a), detect_byline_credit(a.byline))
        for i, (a, s) in enumerate(zip(articles, shingles, strict=True))
    ]


def prepare_many(articles: list[Article], config: SketchConfig) -> list[Prepared]:
    """Articles with their sketches, computed here."""
    return [Prepared(a, k) for a, k in zip(articles, sketch_many(articles, config), strict=True)]


_signers: dict[SketchConfig, Signer] = {}


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _signer(config: SketchConfig) -> Signer:
    signer = _signers.get(config)
    if signer is None:
        signer = _signers[config] = Signer(config)
    return signer


def content_hash(article: Article) -> str:
    h = hashlib.sha256()
    for part in (article.text, article.title, article.url, article.outlet, article.published):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


class Detector:
    """Finds the copies of one story among articles added one by one.

    >>> with Detector.in_memory() as d:
    ...     text = "أعلن المتحدث باسم الكرملين اليوم أن الرئيس سيزور القاهرة الأسبوع المقبل"
    ...     first = d.add(Article(id="a", text=text))
    ...     copy = d.add(Article(id="b", text="موسكو - وكالات: " + text))
    >>> first.action, copy.action, copy.story_id
    ('new', 'copy', 'a')
    """

    def __init__(self, config: DetectorConfig | None = None, store: SQLiteStore | None = None) -> None:
        self.config = config or DetectorConfig()
        sk, mc = self.config.sketch, self.config.match
        self._signer = _signer(sk)
        check_banding(sk.num_perm, mc.bands, mc.rows)
        self._index = BandIndex(mc.bands, mc.rows)
        self._ids: list[str] = []  # article ids by arrival number (the index's numbering)
        self._shared = SharedTextCounter(mc.shared_text_slots_log2)
        self._members: dict[str, _Member] = {}
        self._stories: dict[str, list[str]] = {}
        self._story_shingles: dict[str, HashArray] = {}
        self._canonical: dict[str, tuple[str, str]] = {}
        self._store = store
        self._closed = False
        if store is not None:
            self._replay(store)

    def _replay(self, store: SQLiteStore) -> None:
        numbers: list[int] = []
        signatures: list[Signature] = []
        for row in store.load():
            self._remember(row)
            if row.shingles.size:
                numbers.append(row.seq)
                signatures.append(row.signature)
        if numbers:
            self._index.add(numbers, np.stack(signatures))

    @classmethod
    def open(cls, state_dir: str | Path, config: DetectorConfig | None = None) -> Detector:
        """Open (or create) the state in ``state_dir`` and continue where it stopped."""
        config = config or DetectorConfig()
        return cls(config, SQLiteStore(state_dir, config.sketch.fingerprint))

    @classmethod
    def in_memory(cls, config: DetectorConfig | None = None) -> Detector:
        """A detector whose state lives only as long as the object."""
        return cls(config, None)

    # -- adding -------------------------------------------------------------------------------

    def add(self, article: Article) -> Decision:
        """Add one article and say which story it belongs to."""
        return self.add_many([article])[0]

    def add_many(self, articles: Iterable[Article], *, workers: int = 1, chunk_size: int = 1000) -> list[Decision]:
        """Add articles in the given order (one transaction for the batch).

        With ``workers`` > 1 the pure steps (cleaning, shingling, signing) run in that many
        processes, ``chunk_size`` articles at a time, while this process adds the chunks already
        done; the decisions are the same whatever the number of workers or the chunk size.
        Worker processes are spawned, so a script that uses them needs the usual
        ``if __name__ == "__main__":`` guard.
        """
        batch = list(articles)
        config = self.config.sketch
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if workers <= 1 or len(batch) < 2 * chunk_size:
            return self.add_prepared(prepare_many(batch, config))
        self._check_open()
        self._refuse_changed_ids(batch)
        chunks = [batch[i : i + chunk_size] for i in range(0, len(batch), chunk_size)]
        # spawn, not fork: forking a process that runs threads (polars, the daemon) can deadlock.
        context = multiprocessing.get_context("spawn")
        decisions: list[Decision] = []

        def run() -> list[Decision]:
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                # Chunks come back in order while the next ones are computed: adding overlaps signing.
                for chunk, sketches in zip(chunks, pool.map(sketch_many, chunks, itertools.repeat(config)),
                                           strict=True):
                    decisions.extend(self._add_batch([Prepared(a, k) for a, k in zip(chunk, sketches, strict=True)]))
            return decisions

        return self._in_transaction(run)

    def add_prepared(self, prepared: list[Prepared]) -> list[Decision]:
        """Add articles whose shingles and signatures were computed elsewhere (e.g. in workers)."""
        self._check_open()
        self._refuse_changed_ids([p.article for p in prepared], [p.sketch.digest for p in prepared])
        return self._in_transaction(lambda: self._add_batch(prepared))

    def _in_transaction(self, work: Callable[[], list[Decision]]) -> list[Decision]:
        if self._store is None:
            return work()
        try:
            with self._store.transaction():
                return work()
        except BaseException:
            # The transaction rolled back: rebuild memory from what is stored, so the two agree.
            self._reset()
            self._replay(self._store)
            raise

    def _add_batch(self, prepared: list[Prepared]) -> list[Decision]:
        # Number the articles that are new (first time their id is seen) in arrival order, and
        # find every candidate of the batch in one vectorized pass over the band index.
        fresh: dict[int, int] = {}
        seen: set[str] = set()
        for i, p in enumerate(prepared):
            if p.article.id not in self._members and p.article.id not in seen:
                seen.add(p.article.id)
                fresh[i] = len(self._members) + len(fresh)
        indexed = [i for i in fresh if prepared[i].shingles.size]
        found: dict[int, npt.NDArray[np.int64]] = {}
        if indexed:
            signatures = np.stack([prepared[i].signature for i in indexed])
            lists = self._index.add_batch([fresh[i] for i in indexed], signatures)
            found = dict(zip(indexed, lists, strict=True))
        empty = np.empty(0, dtype=np.int64)
        return [self._add_one(p, found.get(i, empty)) for i, p in enumerate(prepared)]

    def _reset(self) -> None:
        mc = self.config.match
        self._index = BandIndex(mc.bands, mc.rows)
        self._ids = []
        self._shared = SharedTextCounter(mc.shared_text_slots_log2)
        self._members = {}
        self._stories = {}
        self._story_shingles = {}
        self._canonical = {}

    def _refuse_changed_ids(self, articles: list[Article], digests: list[str] | None = None) -> None:
        """Check every id before changing anything, so a refused batch leaves no trace.

        Only ids that repeat (in the batch or the state) need their content compared; their
        digests are computed here when ``digests`` is not given.
        """
        counts = Counter(a.id for a in articles)
        seen: dict[str, str] = {}
        for i, a in enumerate(articles):
            known = self._members.get(a.id)
            if known is None and counts[a.id] == 1:
                continue
            digest = digests[i] if digests is not None else content_hash(a)
            previous = known.row.content_hash if known is not None else seen.get(a.id)
            if previous is not None and previous != digest:
                raise DuplicateIdError(a.id)
            seen[a.id] = digest

    def _add_one(self, p: Prepared, candidates: npt.NDArray[np.int64]) -> Decision:
        article = p.article
        digest = p.sketch.digest
        known = self._members.get(article.id)
        if known is not None:
            if known.row.content_hash != digest:
                raise DuplicateIdError(article.id)
            return self._decision_of(known.row, "unchanged")
        neighbours, checked, linked = self._neighbours(p.shingles, candidates)
        placement = place(neighbours, checked, linked, self.config.match.majority)
        story_id = placement.story_id if placement.story_id is not None else article.id
        best = placement.best
        credit = p.sketch.credit
        row = StoredArticle(
            seq=len(self._members),
            id=article.id,
            content_hash=digest,
            story_id=story_id,
            action=placement.kind,
            best_match_id=best.article_id if best else None,
            similarity=round(best.jaccard, 4) if best else 0.0,
            containment=round(best.containment, 4) if best else 0.0,
            title=article.title,
            url=article.url,
            outlet=article.outlet,
            published=article.published,
            byline=article.byline,
            fetched_at=article.fetched_at,
            outlet_is_agency=article.outlet_is_agency,
            credit=credit.agency if credit else None,
            credit_where=credit.where if credit else None,
            credit_text=credit.text if credit else None,
            shingles=p.shingles,
            signature=p.signature,
            text=article.text,
        )
        if self._store is not None:
            self._store.insert(row)
        self._remember(row)
        return self._decision_of(row, placement.kind)

    def _remember(self, row: StoredArticle) -> None:
        facts = CanonicalFacts(
            article_id=row.id,
            outlet_is_agency=row.outlet_is_agency,
            credited_agency=row.credit,
            published=row.published,
            completeness=int(row.shingles.size),
        )
        self._members[row.id] = _Member(row, facts)
        self._ids.append(row.id)
        members = self._stories.setdefault(row.story_id, [])
        members.append(row.id)
        known = self._story_shingles.get(row.story_id)
        if known is None:
            fresh = row.shingles
            self._story_shingles[row.story_id] = row.shingles
        else:
            at = np.searchsorted(known, row.shingles)
            at[at == known.size] = 0
            fresh = row.shingles[known[at] != row.shingles] if known.size else row.shingles
            if fresh.size:
                # Two sorted runs: the stable sort (a merge sort) joins them in linear time.
                self._story_shingles[row.story_id] = np.sort(np.concatenate([known, fresh]), kind="stable")
        self._shared.add_story_shingles(fresh)
        self._canonical.pop(row.story_id, None)

    # -- matching -----------------------------------------------------------------------------

    def _neighbours(
        self, shingles: HashArray, candidates: npt.NDArray[np.int64]
    ) -> tuple[list[Neighbour], dict[str, int], _Links]:
        mc = self.config.match
        links = _Links(self)
        if shingles.size == 0:
            return [], {}, links
        ids = self._ids
        stories = sorted({self._members[ids[c]].row.story_id for c in candidates.tolist()})
        common = self._shared.common(shingles, mc.template_stories)
        neighbours: list[Neighbour] = []
        checked: dict[str, int] = {}
        member_ids: list[str] = []
        story_of: list[str] = []
        for story in stories:
            members = self._members_to_check(story)
            checked[story] = len(members)
            member_ids += members
            story_of += [story] * len(members)
        shared, containment, jaccard = overlap_many(
            shingles, common, [self._members[m].row.shingles for m in member_ids], self._shared, mc.template_stories
        )
        for i in np.flatnonzero((shared >= mc.min_shared) & (containment >= mc.threshold)).tolist():
            neighbours.append(Neighbour(member_ids[i], story_of[i], float(containment[i]), float(jaccard[i])))
        return neighbours, checked, links

    def _members_to_check(self, story: str) -> list[str]:
        members = self._stories[story]
        limit = self.config.match.max_members_checked
        if len(members) <= limit:
            return members
        canonical = self._canonical_of(story)[0]
        recent = [m for m in members[-limit:] if m != canonical][: limit - 1]
        return [canonical, *recent]

    def _overlap_with(self, shingles: HashArray, common: npt.NDArray[np.bool_], member_id: str) -> Overlap:
        other = self._members[member_id].row.shingles
        other_common = self._shared.common(other, self.config.match.template_stories)
        return overlap(shingles, common, other, other_common)

    def _linked(self, a: str, b: str) -> bool:
        mc = self.config.match
        sa = self._members[a].row.shingles
        o = self._overlap_with(sa, self._shared.common(sa, mc.template_stories), b)
        return o.shared >= mc.min_shared and o.containment >= mc.threshold

    # -- reading ------------------------------------------------------------------------------

    def _canonical_of(self, story: str) -> tuple[str, str]:
        cached = self._canonical.get(story)
        if cached is None:
            cached = canonical_policy([self._members[m].facts for m in self._stories[story]])
            self._canonical[story] = cached
        return cached

    def _decision_of(self, row: StoredArticle, action: str) -> Decision:
        return Decision(
            article_id=row.id,
            story_id=row.story_id,
            action=action,  # type: ignore[arg-type]
            canonical_id=self._canonical_of(row.story_id)[0],
            best_match_id=row.best_match_id,
            similarity=row.similarity,
            containment=row.containment,
        )

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._members

    def record(self, article_id: str) -> StoredArticle:
        """What was stored for an article: its fields, credit, story and decision figures."""
        member = self._members.get(article_id)
        if member is None:
            raise KeyError(f"no article with id {article_id!r} in this detector")
        return member.row

    def story_of(self, article_id: str) -> Story:
        """The story an article belongs to."""
        member = self._members.get(article_id)
        if member is None:
            raise KeyError(f"no article with id {article_id!r} in this detector")
        return self.story(member.row.story_id)

    def story(self, story_id: str) -> Story:
        """A story with its canonical copy and provenance (members in time order)."""
        if story_id not in self._stories:
            raise KeyError(f"no story with id {story_id!r}")
        canonical_id, reason = self._canonical_of(story_id)
        canon = self._members[canonical_id].row
        common = self._shared.common(canon.shingles, self.config.match.template_stories)
        entries = []
        for m in self._stories[story_id]:
            row = self._members[m].row
            o = overlap(row.shingles, self._shared.common(row.shingles, self.config.match.template_stories),
                        canon.shingles, common) if m != canonical_id else None
            entries.append(
                ProvenanceEntry(
                    article_id=row.id,
                    outlet=row.outlet,
                    url=row.url,
                    title=row.title,
                    published=row.published,
                    fetched_at=row.fetched_at,
                    credit=row.credit or "",
                    is_canonical=m == canonical_id,
                    similarity=1.0 if o is None else round(o.jaccard, 4),
                    containment=1.0 if o is None else round(o.containment, 4),
                )
            )
        entries.sort(key=lambda e: (e.published or "\uffff", self._members[e.article_id].row.seq))
        return Story(story_id=story_id, canonical_id=canonical_id, canonical_reason=reason,
                     provenance=tuple(entries))

    def stories(self) -> Iterator[Story]:
        """Every story, in the order they were founded."""
        for story_id in self._stories:
            yield self.story(story_id)

    def assignments(self) -> Iterator[tuple[str, str, str]]:
        """(article id, story id, canonical id) for every article, in the order they were added."""
        for article_id, member in self._members.items():
            story = member.row.story_id
            yield article_id, story, self._canonical_of(story)[0]

    def query(self, text: str, limit: int = 5) -> list[StoryMatch]:
        """The stories nearest to ``text``, best first, without adding it."""
        self._check_open()
        sk = self.config.sketch
        shingles = shingle_hashes(text, sk.shingle_words, sk.hash_seed)
        neighbours, _, _ = self._neighbours(shingles, self._index.query(self._signer.sign(shingles)))
        best: dict[str, Neighbour] = {}
        for n in neighbours:
            if n.story_id not in best or (n.containment, n.jaccard) > (best[n.story_id].containment,
                                                                        best[n.story_id].jaccard):
                best[n.story_id] = n
        ranked = sorted(best.values(), key=lambda n: (-n.containment, -n.jaccard, n.story_id))[:limit]
        return [StoryMatch(n.story_id, self._canonical_of(n.story_id)[0], n.article_id, n.containment, n.jaccard)
                for n in ranked]

    # -- lifecycle ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Detector is closed; open a new one with Detector.open(state_dir)")

    def close(self) -> None:
        if not self._closed and self._store is not None:
            self._store.close()
        self._closed = True

    def __enter__(self) -> Detector:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _Links:
    """Neighbour tests between existing articles, memoized for one decision."""

    def __init__(self, detector: Detector) -> None:
        self._detector = detector
        self._memo: dict[tuple[str, str], bool] = {}

    def __call__(self, a: str, b: str) -> bool:
        key = (a, b) if a < b else (b, a)
        found = self._memo.get(key)
        if found is None:
            found = self._detector._linked(*key)
            self._memo[key] = found
        return found
