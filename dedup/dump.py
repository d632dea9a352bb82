"""Reading article dumps and writing results, with errors that name the file and line."""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import polars as pl

from dedup._errors import InputError
from dedup._model import Article, Story

_OPTIONAL = ("title", "url", "outlet", "published", "byline", "fetched_at")


@dataclass(slots=True)
class ReadReport:
    """What a read skipped, one line each (with ``skip_bad``)."""

    skipped: list[str] = field(default_factory=list)
    repeated: int = 0


@dataclass(frozen=True, slots=True)
class Columns:
    """Which input column holds each Article field (``--id-col`` ... on the command line)."""

    id: str = "id"
    text: str = "text"
    title: str = "title"
    url: str = "url"
    outlet: str = "outlet"
    published: str = "published"
    byline: str = "byline"
    fetched_at: str = "fetched_at"
    outlet_is_agency: str = "outlet_is_agency"

    def rename(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A row with its columns renamed to the Article field names."""
        if self == _DEFAULT_COLUMNS:
            return obj
        return {name: obj.get(column) for name, column in zip(_FIELDS, self._columns(), strict=True)}

    def _columns(self) -> tuple[str, ...]:
        return tuple(getattr(self, f) for f in _FIELDS)


_FIELDS = ("id", "text", "title", "url", "outlet", "published", "byline", "fetched_at", "outlet_is_agency")
_DEFAULT_COLUMNS = Columns()
FORMATS = ".jsonl, .ndjson (plain, .gz or .zst), .csv, .parquet"
_JSONL = tuple(f"{base}{comp}" for base in (".jsonl", ".ndjson", ".json") for comp in ("", ".gz", ".zst"))


def _open_binary(path: str) -> IO[bytes]:
    """A file opened for reading bytes, decompressing .gz and .zst."""
    lower = path.lower()
    if lower.endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    if lower.endswith(".zst"):
        import zstandard

        stream: IO[bytes] = zstandard.open(path, "rb")
        return stream
    return open(path, "rb")


def _corrupt_errors() -> tuple[type[BaseException], ...]:
    import zstandard

    return (OSError, EOFError, zlib.error, zstandard.ZstdError)


_CORRUPT = _corrupt_errors()


def expand_inputs(patterns: list[str]) -> list[Path]:
    """Input paths, with glob patterns expanded (sorted); a pattern that matches nothing is an error."""
    paths: list[Path] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            found = sorted(glob.glob(pattern, recursive=True))
            if not found:
                raise InputError(pattern, None, "the pattern matches no file", "Check the pattern and the folder")
            paths += [Path(p) for p in found]
        else:
            paths.append(Path(pattern))
    return paths


def read_many(paths: list[Path], report: ReadReport, skip_bad: bool = False,
              columns: Columns | None = None) -> Iterator[Article]:
    """The articles of several dumps, in :func:`time_order_key` order; an id repeated across
    files follows the same rule as within one (same content dropped and counted, other refused)."""
    columns = columns or _DEFAULT_COLUMNS
    if len(paths) == 1:
        return read_articles(paths[0], report, skip_bad, columns, ordered=True)
    merged: dict[str, tuple[Article, str]] = {}
    for path in paths:
        for article in read_articles(path, report, skip_bad, columns):
            first = merged.get(article.id)
            if first is None:
                merged[article.id] = (article, str(path))
            elif first[0] == article:
                report.repeated += 1
            else:
                error = InputError(str(path), None, f"id {article.id!r} is also in {first[1]} with other content",
                                   "Ids must be unique across the files: pass --skip-bad to keep the first")
                if not skip_bad:
                    raise error
                report.skipped.append(str(error))
    return iter(sorted((a for a, _ in merged.values()), key=time_order_key))


def read_articles(path: str | Path, report: ReadReport, skip_bad: bool = False,
                  columns: Columns = _DEFAULT_COLUMNS, ordered: bool = False) -> Iterator[Article]:
    """Articles from a dump, by extension: JSONL/NDJSON (plain or .gz), CSV or Parquet.

    Bad rows raise :class:`InputError` naming the file and line (or row), or with ``skip_bad``
    are listed in ``report`` and skipped; ids repeated with identical content are dropped and
    counted, with other content they are bad rows. With ``ordered`` the articles come in
    :func:`time_order_key` order (the order ``dedup scan`` processes them in).
    """
    name = str(path).lower()
    source = str(path)
    if name.endswith(_JSONL):
        fast = _jsonl_rows_polars(source, columns, ordered)
        if fast is not None:
            return _unique(fast, source, report, skip_bad, "line")
        rows, unit = _jsonl_rows(source, columns), "line"
    elif name.endswith(".csv"):
        rows, unit = _table_rows(source, "csv", columns), "row"
    elif name.endswith(".parquet"):
        rows, unit = _table_rows(source, "parquet", columns), "row"
    else:
        raise InputError(source, None, "unknown input format", f"Use one of {FORMATS}")
    articles = _unique(rows, source, report, skip_bad, unit)
    return iter(sorted(articles, key=time_order_key)) if ordered else articles


def read_jsonl(path: str | Path, report: ReadReport, skip_bad: bool = False) -> Iterator[Article]:
    """Articles from a JSONL file: one object per line with ``id``, ``text`` and optional fields."""
    return _unique(_jsonl_rows(str(path), _DEFAULT_COLUMNS), str(path), report, skip_bad, "line")


_Row = tuple[int, "Article | InputError | None"]


def _unique(rows: Iterator[_Row], path: str, report: ReadReport, skip_bad: bool, unit: str) -> Iterator[Article]:
    seen: dict[str, tuple[int, int]] = {}
    for number, parsed in rows:
        try:
            if isinstance(parsed, InputError):
                raise parsed
            if parsed is None:
                continue
            article = parsed
            fingerprint = hash((article.text, article.title, article.url, article.outlet, article.published))
            first = seen.get(article.id)
            if first is not None:
                if first[1] == fingerprint:
                    report.repeated += 1
                    continue
                raise InputError(
                    path, number,
                    f"id {article.id!r} was already used on {unit} {first[0]} with different content",
                    "Ids must be unique: give one of them another id, or pass --skip-bad to keep the first",
                    unit=unit,
                )
            seen[article.id] = (number, fingerprint)
        except InputError as exc:
            if not skip_bad:
                raise
            report.skipped.append(str(exc))
            continue
        yield article


def _jsonl_rows(path: str, columns: Columns) -> Iterator[_Row]:
    with _open_binary(path) as fh:
        number = 0
        try:
            for number, raw in enumerate(fh, 1):
                try:
                    yield number, _parse_line(raw, path, number, columns)
                except InputError as exc:
                    yield number, exc
        except _CORRUPT as exc:
            raise InputError(path, number + 1, f"the compressed file is corrupt ({exc})",
                             "Check the download, or decompress what can be read and pass that file") from None


def _jsonl_rows_polars(path: str, columns: Columns, ordered: bool) -> Iterator[_Row] | None:
    """The rows of a clean JSONL file read by polars (several times faster), or None.

    Anything unusual (blank lines, a parse error, unexpected types, a corrupt gzip) returns None
    and the file is read line by line, which names the line at fault.
    """
    try:
        with _open_binary(path) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise
    except _CORRUPT:
        return None
    if not data or data[:1].isspace() or b"\n\n" in data or b"\n\r\n" in data or b"\n " in data:
        return None
    if _non_string_value(data, columns):
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    try:
        frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    except Exception:  # polars raises several types; the slow path says what is wrong and where
        return None
    del data
    if frame.height != lines or columns.id not in frame.columns:
        return None
    wanted = [getattr(columns, f) for f in _FIELDS if getattr(columns, f) in frame.columns]
    for name in wanted:
        dtype = frame.schema[name]
        if name == columns.outlet_is_agency:
            if dtype != pl.Boolean:
                return None
        elif not (dtype == pl.String or dtype == pl.Null or (dtype.is_integer() and name != columns.text)):
            return None  # e.g. a number as the text: the checking reader names the line
    frame = frame.select(wanted).with_columns(
        [pl.col(c).cast(pl.String) for c in wanted if c != columns.outlet_is_agency]
    ).with_row_index("__line", offset=1)
    if ordered:
        # time_order_key: known times first, by time (UTF-8 byte order is code point order), then id.
        if columns.published in wanted:
            published = pl.col(columns.published).fill_null("")
            frame = frame.sort([published == "", published, pl.col(columns.id)])
        else:
            frame = frame.sort(pl.col(columns.id))

    names = {getattr(columns, f): f for f in _FIELDS}
    values = {names[c]: frame[c].to_list() for c in wanted}
    line_numbers = frame["__line"].to_list()
    empty = [None] * frame.height
    agency = values.pop("outlet_is_agency", empty)
    ids, texts = values.pop("id"), values.pop("text", empty)
    optional = [values.get(k, empty) for k in _OPTIONAL]
    del frame

    def rows() -> Iterator[_Row]:
        # The schema was checked above: every value is a string (or null), so Articles are
        # built directly; a row without an id goes the checking way, which says so.
        for i, (number, article_id, text) in enumerate(zip(line_numbers, ids, texts, strict=True)):
            if not article_id:
                yield number, InputError(path, number, "missing 'id'", "Every row needs an 'id' and a 'text'")
                continue
            title, url, outlet, published, byline, fetched_at = (o[i] or "" for o in optional)
            yield number, Article(id=article_id, text=text or "", title=title, url=url, outlet=outlet,
                                  published=published, byline=byline, fetched_at=fetched_at,
                                  outlet_is_agency=bool(agency[i]))

    return rows()


def _non_string_value(data: bytes, columns: Columns) -> bool:
    """Whether a text field holds something other than a string or null (or the id something
    other than a string, a number or null) anywhere in ``data``.

    polars turns such values into strings without a word (5 becomes "5", [1, 2] "[1, 2]"); the
    line-by-line reader refuses them and names the line, so their files go that way. A key
    inside a string value has escaped quotes and is not matched; a nested key may be, which
    only costs the fast path.
    """
    def names(fields: tuple[str, ...]) -> bytes:
        return b"|".join(re.escape(json.dumps(getattr(columns, f), ensure_ascii=False).encode()) for f in fields)

    texts = tuple(f for f in _FIELDS if f not in ("id", "outlet_is_agency"))
    pattern = rb"(?:" + names(texts) + rb')\s*:\s*(?!null\b)[^"\s]|' + names(("id",)) + rb'\s*:\s*(?!null\b)[^"\s\d-]'
    return re.search(pattern, data) is not None


def _table_rows(path: str, kind: str, columns: Columns) -> Iterator[_Row]:
    try:
        frame = pl.read_csv(path, infer_schema=False) if kind == "csv" else pl.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as exc:  # polars raises several types; the message says which
        raise InputError(path, None, f"cannot be read as {kind.upper()}: {exc}") from None
    names = set(frame.columns)
    for required, option in (("id", "--id-col"), ("text", "--text-col")):
        column = getattr(columns, required)
        if column not in names:
            raise InputError(path, None, f"no column {column!r} for the article {required} (columns: "
                                         f"{', '.join(frame.columns)})", f"Name the column with {option}")
    for name in _FIELDS:
        column = getattr(columns, name)
        if column in names:
            dtype = frame.schema[column]
            if name == "outlet_is_agency":
                if dtype != pl.Boolean and dtype != pl.String:
                    raise InputError(path, None, f"column {column!r} has type {dtype}, expected Boolean",
                                     "Store true/false in it")
            elif not (dtype == pl.String or dtype.is_numeric() or dtype.is_temporal()):
                raise InputError(path, None, f"column {column!r} ({name}) has type {dtype}, expected text",
                                 "Cast it to a string column")
    wanted = [getattr(columns, f) for f in _FIELDS if getattr(columns, f) in names]
    offset = 2 if kind == "csv" else 1  # a CSV's first data row is on line 2
    as_text = [pl.col(c).cast(pl.String) for c in wanted if c != columns.outlet_is_agency]
    frame = frame.select(wanted).with_columns(as_text)
    for number, obj in enumerate(frame.iter_rows(named=True), offset):
        try:
            yield number, _article(columns.rename(obj), path, number, "line" if kind == "csv" else "row")
        except InputError as exc:
            yield number, exc


def _parse_line(raw: bytes, path: str, number: int, columns: Columns = _DEFAULT_COLUMNS) -> Article | None:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, number, f"not valid UTF-8 (byte {exc.start})",
                         "Re-encode the file as UTF-8") from None
    if not line.strip():
        return None
    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(path, number, f"malformed JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise InputError(path, number, f"expected a JSON object, got {type(obj).__name__}")
    return _article(columns.rename(obj), path, number, "line")


def _article(obj: dict[str, Any], path: str, number: int, unit: str) -> Article:
    if obj.get("id") in (None, ""):
        raise InputError(path, number, "missing 'id'", "Every row needs an 'id' and a 'text'", unit=unit)
    text = obj.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(path, number, f"'text' must be a string, got {type(text).__name__}", unit=unit)
    fields = {k: obj.get(k) for k in _OPTIONAL}
    for k, v in fields.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, str | int | float)):
            raise InputError(path, number, f"'{k}' must be a string, got {type(v).__name__}", unit=unit)
    agency = obj.get("outlet_is_agency", False)
    if isinstance(agency, str):
        agency = agency.strip().lower() in ("1", "true", "yes")
    return Article(
        id=str(obj["id"]),
        text=text,
        outlet_is_agency=bool(agency),
        **{k: ("" if v is None else str(v)) for k, v in fields.items()},
    )


def time_order_key(article: Article) -> tuple[bool, str, str]:
    """The order the CLI processes a dump in: by publication time, unknown times last, then id."""
    return (not article.published, article.published, article.id)


def write_table(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write rows as JSONL, CSV or Parquet (by extension), atomically: temp name, then rename."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".jsonl", ".ndjson", ".csv", ".parquet"):
        raise InputError(str(target), None, f"unknown output format {suffix!r}",
                         "Use a name ending in .jsonl, .csv or .parquet")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        if suffix in (".jsonl", ".ndjson"):
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False))
                    fh.write("\n")
        else:
            frame = pl.DataFrame(rows) if rows else pl.DataFrame()
            if suffix == ".csv":
                flat = frame.with_columns(
                    [pl.col(c).list.join(";") for c, t in frame.schema.items() if isinstance(t, pl.List)]
                )
                flat.write_csv(tmp)
            else:
                frame.write_parquet(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def story_row(story: Story) -> dict[str, Any]:
    """A story as one output row, provenance nested."""
    published = [p.published for p in story.provenance if p.published]
    return {
        "story": story.story_id,
        "canonical_id": story.canonical_id,
        "canonical_reason": story.canonical_reason,
        "size": story.size,
        "outlets": list(story.outlets),
        "first_published": min(published) if published else None,
        "last_published": max(published) if published else None,
        "uncredited": sum(1 for p in story.provenance if "uncredited" in p.flags),
        "provenance": [
            {
                "id": p.article_id, "outlet": p.outlet, "url": p.url, "title": p.title,
                "published": p.published, "first_seen": p.fetched_at, "credit": p.credit,
                "credit_where": p.credit_where, "credit_via": p.credit_via, "is_canonical": p.is_canonical,
                "similarity": p.similarity, "containment": p.containment, "flags": list(p.flags),
                "embedded_in": p.embedded_in,
            }
            for p in story.provenance
        ],
    }
