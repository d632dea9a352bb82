"""The daemon's own state, beside the detector's: per feed validators, failures and schedule; per
item its identity and the article it became (``<state>/feeds.sqlite``).

An item is recorded only after the detector has committed its article, and a feed's validators
only after all its items are in: a crash in between makes the next poll fetch the feed again, and
the detector answers "unchanged" for what it already has. Nothing is lost, nothing counted twice.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT, last_modified TEXT,
    failures INTEGER NOT NULL DEFAULT 0,
    next_due REAL NOT NULL DEFAULT 0,
    last_poll TEXT, last_success TEXT, last_error TEXT, last_status TEXT
);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    article_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    versions INTEGER NOT NULL DEFAULT 1,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_feed ON items (feed);
"""


@dataclass(frozen=True, slots=True)
class FeedRow:
    name: str
    url: str
    etag: str | None
    last_modified: str | None
    failures: int
    next_due: float
    last_poll: str | None
    last_success: str | None
    last_error: str | None
    last_status: str | None
    items: int


@dataclass(frozen=True, slots=True)
class ItemRow:
    key: str
    article_id: str
    content_hash: str
    versions: int


class FeedState:
    FILENAME = "feeds.sqlite"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.folder / self.FILENAME, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def feed(self, name: str, url: str) -> FeedRow:
        self._db.execute("INSERT OR IGNORE INTO feeds (name, url) VALUES (?, ?)", (name, url))
        if self._db.execute("SELECT url FROM feeds WHERE name = ?", (name,)).fetchone()[0] != url:
            # The feed moved: its validators belong to the old address.
            self._db.execute("UPDATE feeds SET url = ?, etag = NULL, last_modified = NULL WHERE name = ?", (url, name))
        return self._row(name)

    def _row(self, name: str) -> FeedRow:
        r = self._db.execute(
            "SELECT name, url, etag, last_modified, failures, next_due, last_poll, last_success, last_error, "
            "last_status, (SELECT COUNT(*) FROM items WHERE items.feed = feeds.name) FROM feeds WHERE name = ?",
            (name,),
        ).fetchone()
        return FeedRow(*r)

    def feeds(self) -> list[FeedRow]:
        names = [r[0] for r in self._db.execute("SELECT name FROM feeds ORDER BY name")]
        return [self._row(n) for n in names]

    def item(self, key: str) -> ItemRow | None:
        r = self._db.execute("SELECT key, article_id, content_hash, versions FROM items WHERE key = ?",
                             (key,)).fetchone()
        return ItemRow(*r) if r else None

    def record_item(self, key: str, feed: str, article_id: str, content_hash: str, versions: int, now: str) -> None:
        self._db.execute(
            "INSERT INTO items (key, feed, article_id, content_hash, versions, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET article_id = excluded.article_id, "
            "content_hash = excluded.content_hash, versions = excluded.versions, last_seen = excluded.last_seen",
            (key, feed, article_id, content_hash, versions, now, now),
        )

    def succeeded(self, name: str, *, etag: str | None, last_modified: str | None, status: str, now: str,
                  next_due: float) -> None:
        self._db.execute(
            "UPDATE feeds SET etag = ?, last_modified = ?, failures = 0, next_due = ?, last_poll = ?, "
            "last_success = ?, last_status = ? WHERE name = ?",
            (etag, last_modified, next_due, now, now, status, name),
        )

    def failed(self, name: str, *, error: str, now: str, next_due: float) -> int:
        self._db.execute(
            "UPDATE feeds SET failures = failures + 1, next_due = ?, last_poll = ?, last_error = ?, "
            "last_status = 'error' WHERE name = ?",
            (next_due, now, f"{now} {error}", name),
        )
        return int(self._db.execute("SELECT failures FROM feeds WHERE name = ?", (name,)).fetchone()[0])

    def close(self) -> None:
        self._db.close()
