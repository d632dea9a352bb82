"""Reading article dumps and writing results, with errors that name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from dedup._errors import InputError
from dedup._model import Article, Story

_OPTIONAL = ("title", "url", "outlet", "published", "byline", "fetched_at")


@dataclass(slots=True)
class ReadReport:
    """What a read skipped, one line each (with ``skip_bad``)."""

    skipped: list[str] = field(default_factory=list)
    repeated: int = 0


def read_jsonl(path: str | Path, report: ReadReport, skip_bad: bool = False) -> Iterator[Article]:
    """Articles from a JSONL file: one object per line with ``id``, ``text`` and optional fields.

    A bad line raises :class:`InputError` naming the file and line, or with ``skip_bad`` is
    recorded in ``report`` and skipped. An id repeated with identical content is dropped (counted
    in ``report.repeated``); repeated with other content it is a bad line.
    """
    path = str(path)
    seen: dict[str, tuple[int, int]] = {}
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                article = _parse_line(raw, path, number)
                if article is None:
                    continue
                fingerprint = hash((article.text, article.title, article.url, article.outlet, article.published))
                first = seen.get(article.id)
                if first is not None:
                    if first[1] == fingerprint:
                        report.repeated += 1
                        continue
                    raise InputError(
                        path, number,
                        f"id {article.id!r} was already used on line {first[0]} with different content",
                        "Ids must be unique: give one of them another id, or pass --skip-bad to keep the first",
                    )
                seen[article.id] = (number, fingerprint)
            except InputError as exc:
                if not skip_bad:
                    raise
                report.skipped.append(str(exc))
                continue
            yield article


def _parse_line(raw: bytes, path: str, number: int) -> Article | None:
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
    if obj.get("id") in (None, ""):
        raise InputError(path, number, "missing 'id'", "Every row needs an 'id' and a 'text'")
    text = obj.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(path, number, f"'text' must be a string, got {type(text).__name__}")
    fields = {k: obj.get(k) for k in _OPTIONAL}
    for k, v in fields.items():
        if v is not None and not isinstance(v, str | int | float):
            raise InputError(path, number, f"'{k}' must be a string, got {type(v).__name__}")
    return Article(
        id=str(obj["id"]),
        text=text,
        outlet_is_agency=bool(obj.get("outlet_is_agency", False)),
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
        "provenance": [
            {
                "id": p.article_id, "outlet": p.outlet, "url": p.url, "title": p.title,
                "published": p.published, "credit": p.credit, "is_canonical": p.is_canonical,
                "similarity": p.similarity, "containment": p.containment,
            }
            for p in story.provenance
        ],
    }
