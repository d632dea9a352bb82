"""Run files: the articles of a dump sorted in time order a part at a time, on disk.

A run is a sequence of blocks of up to :data:`RUN_BLOCK` articles each, in :func:`time_order_key`
order; :class:`dedup.dump.Dump` merges the runs of a dump. A block is two pickles: the rows
(each article's fields but its text, and its content digest, :func:`content_digest`, computed
once) with the size of the second pickle, then the texts in UTF-8, as written. A process that
merges runs without needing the texts skips them unread.

A run of an uncompressed JSONL file holds no texts (:class:`Lines`): the second pickle says
where each article's line is in that file, and the text is read from there when it is needed
(the rows then have no digest: it is computed from the text read). Copying the texts into the
runs and reading them back cost as much as parsing the dump, and as much disk.

Every article of a run has a :data:`Place` (file, where its block starts, its place in it, its
id), by which a worker process reads it back (:func:`articles_at`) instead of being sent its
text. No polars here: the workers that only sketch import this module, not the dump readers.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import xxhash

from dedup._errors import InputError
from dedup._model import EMBEDDED_MARK, Article, positional

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


@dataclass(frozen=True, slots=True)
class Lines:
    """Where the texts of a run's articles are: line ``n`` of the JSONL file ``source`` is the
    ``lengths[n - first]`` bytes from ``starts[n - first]``; its ``id_key`` and ``text_key``
    hold the article's id and text."""

    source: str
    id_key: str
    text_key: str
    first: int
    starts: Sequence[int]
    lengths: Sequence[int]


def write_run(path: Path, numbered: list[tuple[int, Article]], encoded: Mapping[int, bytes] | None = None,
              lines: Lines | None = None) -> list[str]:
    """Articles (with the number of their line) to a run file, in :func:`time_order_key` order;
    their content digests, in the order given. ``encoded`` holds the texts of articles given
    without them, in UTF-8, by number. With ``lines`` the texts are left where those say (the
    articles come without them) and no digests are computed (an empty list)."""
    if lines is not None:
        keyed = [((n, a.id, a.title, a.url, a.outlet, a.published, a.byline, a.fetched_at, a.outlet_is_agency, None),
                  n - lines.first) for n, a in numbered]
        keyed.sort(key=_row_order)
        write_line_run(path, [row for row, _ in keyed], lines, [at for _, at in keyed])
        return []
    rows: list[tuple[tuple[Any, ...], Any]] = []
    for n, a in numbered:
        given = encoded.get(n) if encoded is not None else None
        text = a.text.encode("utf-8", "surrogatepass") if given is None else given
        rows.append(((n, a.id, a.title, a.url, a.outlet, a.published, a.byline, a.fetched_at, a.outlet_is_agency,
                      content_digest(text, a.title, a.url, a.outlet, a.published)), text))
    digests = [row[-1] for row, _ in rows]
    rows.sort(key=_row_order)
    with open(path, "wb") as fh:
        for start in range(0, len(rows), RUN_BLOCK):
            block = rows[start : start + RUN_BLOCK]
            texts = pickle.dumps([text for _, text in block], protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump((len(texts), [row for row, _ in block]), fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.write(texts)
    return digests


def write_line_run(path: Path, rows: list[tuple[Any, ...]], lines: Lines, at: Sequence[int]) -> None:
    """A run file of rows (digest None) in time order, each with where its line is: the line
    ``at[i]`` of ``lines`` (counted from its first) for ``rows[i]``."""
    with open(path, "wb") as fh:
        for start in range(0, len(rows), RUN_BLOCK):
            where = pickle.dumps((lines.source, lines.id_key, lines.text_key,
                                  [(lines.starts[i], lines.lengths[i]) for i in at[start : start + RUN_BLOCK]]),
                                 protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump((len(where), rows[start : start + RUN_BLOCK]), fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.write(where)


def _row_order(pair: tuple[tuple[Any, ...], Any]) -> tuple[bool, str, str]:
    row = pair[0]
    return (not row[5], row[5], row[1])  # time_order_key of the row's article


def read_run(path: Path, dropped: frozenset[int], *, texts: bool = True) -> Iterator[tuple[Article, Place]]:
    """The articles of a run file with their places, but those on the ``dropped`` lines (with
    empty texts unless ``texts``: for a caller that has the texts read from the places, and
    then does not read them at all)."""
    name = str(path)
    with open(path, "rb") as fh, _Sources() as sources:
        while True:
            offset = fh.tell()
            try:
                size, rows = pickle.load(fh)
            except EOFError:
                return
            if texts:
                stored = pickle.load(fh)
            else:
                fh.seek(size, io.SEEK_CUR)
            for place, row in enumerate(rows):
                if dropped and row[0] in dropped:
                    continue
                article = _article(row, sources.text(rows, stored, place) if texts else "")
                yield article, (name, offset, place, article.id)


def articles_at(places: list[Place], digests: bool = True) -> list[tuple[Article, str]]:
    """The articles at these places of run files (each block read once), in the order given,
    with their content digests. Without ``digests``, those a run does not hold are not computed
    (an empty string) but for ids that an appended article's could be (:data:`EMBEDDED_MARK`):
    see :class:`dedup.detector.SketchAhead`."""
    handles: dict[str, IO[bytes]] = {}
    blocks: dict[tuple[str, int], tuple[list[Any], Any]] = {}
    try:
        with _Sources() as sources:
            out: list[tuple[Article, str]] = []
            for name, offset, place, article_id in places:
                block = blocks.get((name, offset))
                if block is None:
                    fh = handles.get(name)
                    if fh is None:
                        fh = handles[name] = open(name, "rb")  # noqa: SIM115 (closed below)
                    fh.seek(offset)
                    block = blocks[(name, offset)] = (pickle.load(fh)[1], pickle.load(fh))
                rows, stored = block
                row = rows[place]
                if row[1] != article_id:
                    raise RuntimeError(f"{name} changed while it was read: {article_id!r} is no longer at "
                                       f"{offset}/{place}")
                article = _article(row, sources.text(rows, stored, place))
                digest = row[-1]
                if digest is None and (digests or EMBEDDED_MARK in article_id):  # read from its line: hashed now
                    digest = content_digest(article.text.encode("utf-8", "surrogatepass"), article.title, article.url,
                                            article.outlet, article.published)
                out.append((article, digest or ""))
            return out
    finally:
        for fh in handles.values():
            fh.close()


class _Sources:
    """The texts of a run's block: decoded from the block, or read from the lines of the JSONL
    file it names (each file opened once)."""

    def __init__(self) -> None:
        self._files: dict[str, int] = {}

    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()

    def text(self, rows: list[Any], stored: Any, place: int) -> str:
        """The text of the article at ``place`` of a block (``rows``, and what the block holds
        of the texts: the texts, or where their lines are)."""
        if isinstance(stored, list):
            raw: bytes = stored[place]
            return raw.decode("utf-8", "surrogatepass")
        source, id_key, text_key, places = stored
        fd = self._files.get(source)
        if fd is None:
            fd = self._files[source] = os.open(source, os.O_RDONLY)
        start, length = places[place]
        line = os.pread(fd, length, start)
        try:
            obj = json.loads(line)
            same = isinstance(obj, dict) and str(obj.get(id_key)) == rows[place][1]
        except ValueError:
            same = False
        if not same:  # the dump was written to during the scan
            raise InputError(source, rows[place][0], f"changed while it was scanned: this line no longer holds "
                             f"id {rows[place][1]!r}", "Scan a dump once nothing writes to it any more")
        text = obj.get(text_key)
        return text if isinstance(text, str) else ""


def _article(row: tuple[Any, ...], text: str) -> Article:
    _, article_id, title, url, outlet, published, byline, fetched_at, agency, _ = row
    return _new_article(article_id, text, title, url, outlet, published, byline, fetched_at, agency)


_new_article = positional(Article)  # a run holds articles that were checked when they were read
