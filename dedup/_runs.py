"""Run files: the articles of a dump sorted in time order a part at a time, on disk.

A run is a sequence of pickles of up to :data:`RUN_BLOCK` rows each, in :func:`time_order_key`
order; :class:`dedup.dump.Dump` merges the runs of a dump. Every article of a run has a
:data:`Place` (file, where its pickle starts, its place in it, its id), by which a worker
process reads it back (:func:`articles_at`) instead of being sent its text. A row holds the
text in UTF-8, as written (a process that merges runs without needing the texts does not
decode them), and the article's content digest (:func:`content_digest`), computed once from
those bytes. No polars here: the workers that only sketch import this module, not the dump
readers.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import xxhash

from dedup._model import Article, positional

RUN_BLOCK = 64  # articles a pickle in a run: what each run holds in memory while the runs are merged

# (run file, offset of the pickle, place in it, article id)
Place = tuple[str, int, int, str]


def time_order_key(article: Article) -> tuple[bool, str, str]:
    """The order the CLI processes a dump in: by publication time, unknown times last, then id."""
    return (not article.published, article.published, article.id)


def content_digest(text: bytes, title: str, url: str, outlet: str, published: str) -> str:
    """A digest of what identifies an article's content, from its text in UTF-8 (see
    :func:`dedup.detector.content_hash`: the same value)."""
    h = xxhash.xxh3_128(text)
    h.update(b"\x00")
    for part in (title, url, outlet, published):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def write_run(path: Path, numbered: list[tuple[int, Article]], encoded: Mapping[int, bytes] | None = None
              ) -> list[str]:
    """Articles (with the number of their line) to a run file, in :func:`time_order_key` order;
    their content digests, in the order given. ``encoded`` holds the texts of articles given
    without them, in UTF-8, by number."""
    rows = []
    for n, a in numbered:
        given = encoded.get(n) if encoded is not None else None
        text = a.text.encode("utf-8", "surrogatepass") if given is None else given
        rows.append((n, a.id, text, a.title, a.url, a.outlet, a.published, a.byline, a.fetched_at,
                     a.outlet_is_agency, content_digest(text, a.title, a.url, a.outlet, a.published)))
    digests = [row[-1] for row in rows]
    rows.sort(key=lambda row: (not row[6], row[6], row[1]))  # time_order_key of the row's article
    with open(path, "wb") as fh:
        for start in range(0, len(rows), RUN_BLOCK):
            pickle.dump(rows[start : start + RUN_BLOCK], fh, protocol=pickle.HIGHEST_PROTOCOL)
    return digests


def read_run(path: Path, dropped: frozenset[int], *, texts: bool = True) -> Iterator[tuple[Article, Place]]:
    """The articles of a run file with their places, but those on the ``dropped`` lines (with
    empty texts unless ``texts``: for a caller that has the texts read from the places)."""
    name = str(path)
    with open(path, "rb") as fh:
        while True:
            offset = fh.tell()
            try:
                block = pickle.load(fh)
            except EOFError:
                return
            for place, row in enumerate(block):
                if dropped and row[0] in dropped:
                    continue
                article = _article(row, texts)
                yield article, (name, offset, place, article.id)


def articles_at(places: list[Place]) -> list[tuple[Article, str]]:
    """The articles at these places of run files (read once per pickle), in the order given,
    with their content digests."""
    handles: dict[str, IO[bytes]] = {}
    blocks: dict[tuple[str, int], list[Any]] = {}
    try:
        out: list[tuple[Article, str]] = []
        for name, offset, place, article_id in places:
            block = blocks.get((name, offset))
            if block is None:
                fh = handles.get(name)
                if fh is None:
                    fh = handles[name] = open(name, "rb")  # noqa: SIM115 (closed below)
                fh.seek(offset)
                block = blocks[(name, offset)] = pickle.load(fh)
            row = block[place]
            article = _article(row)
            if article.id != article_id:
                raise RuntimeError(f"{name} changed while it was read: {article_id!r} is no longer at {offset}/{place}")
            out.append((article, row[-1]))
        return out
    finally:
        for fh in handles.values():
            fh.close()


def _article(row: tuple[Any, ...], text: bool = True) -> Article:
    _, article_id, raw, title, url, outlet, published, byline, fetched_at, agency, _ = row
    return _new_article(article_id, raw.decode("utf-8", "surrogatepass") if text else "", title, url, outlet, published,
                        byline, fetched_at, agency)


_new_article = positional(Article)  # a run holds articles that were checked when they were read
