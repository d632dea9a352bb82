"""Run files: the articles of a dump sorted in time order a part at a time, on disk.

A run is a sequence of blocks of up to :data:`RUN_BLOCK` articles each, in :func:`time_order_key`
order; :class:`dedup.dump.Dump` merges the runs of a dump. A block is two pickles: the rows
(each article's fields but its text, and its content digest, :func:`content_digest`, computed
once) with the size of the second pickle, then the texts in UTF-8, as written. A process that
merges runs without needing the texts skips them unread. Every article of a run has a
:data:`Place` (file, where its block starts, its place in it, its id), by which a worker
process reads it back (:func:`articles_at`) instead of being sent its text. No polars here:
the workers that only sketch import this module, not the dump readers.
"""

from __future__ import annotations

import io
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
        rows.append(((n, a.id, a.title, a.url, a.outlet, a.published, a.byline, a.fetched_at, a.outlet_is_agency,
                      content_digest(text, a.title, a.url, a.outlet, a.published)), text))
    digests = [row[-1] for row, _ in rows]
    rows.sort(key=lambda pair: (not pair[0][5], pair[0][5], pair[0][1]))  # time_order_key of the row's article
    with open(path, "wb") as fh:
        for start in range(0, len(rows), RUN_BLOCK):
            block = rows[start : start + RUN_BLOCK]
            texts = pickle.dumps([text for _, text in block], protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump((len(texts), [row for row, _ in block]), fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.write(texts)
    return digests


def read_run(path: Path, dropped: frozenset[int], *, texts: bool = True) -> Iterator[tuple[Article, Place]]:
    """The articles of a run file with their places, but those on the ``dropped`` lines (with
    empty texts unless ``texts``: for a caller that has the texts read from the places, and
    then does not read them at all)."""
    name = str(path)
    with open(path, "rb") as fh:
        while True:
            offset = fh.tell()
            try:
                size, rows = pickle.load(fh)
            except EOFError:
                return
            if texts:
                raws = pickle.load(fh)
            else:
                fh.seek(size, io.SEEK_CUR)
                raws = [b""] * len(rows)
            for place, (row, raw) in enumerate(zip(rows, raws, strict=True)):
                if dropped and row[0] in dropped:
                    continue
                article = _article(row, raw)
                yield article, (name, offset, place, article.id)


def articles_at(places: list[Place]) -> list[tuple[Article, str]]:
    """The articles at these places of run files (each block read once), in the order given,
    with their content digests."""
    handles: dict[str, IO[bytes]] = {}
    blocks: dict[tuple[str, int], tuple[list[Any], list[bytes]]] = {}
    try:
        out: list[tuple[Article, str]] = []
        for name, offset, place, article_id in places:
            block = blocks.get((name, offset))
            if block is None:
                fh = handles.get(name)
                if fh is None:
                    fh = handles[name] = open(name, "rb")  # noqa: SIM115 (closed below)
                fh.seek(offset)
                block = blocks[(name, offset)] = (pickle.load(fh)[1], pickle.load(fh))
            rows, raws = block
            row = rows[place]
            article = _article(row, raws[place])
            if article.id != article_id:
                raise RuntimeError(f"{name} changed while it was read: {article_id!r} is no longer at {offset}/{place}")
            out.append((article, row[-1]))
        return out
    finally:
        for fh in handles.values():
            fh.close()


def _article(row: tuple[Any, ...], raw: bytes) -> Article:
    _, article_id, title, url, outlet, published, byline, fetched_at, agency, _ = row
    return _new_article(article_id, raw.decode("utf-8", "surrogatepass"), title, url, outlet, published, byline,
                        fetched_at, agency)


_new_article = positional(Article)  # a run holds articles that were checked when they were read
