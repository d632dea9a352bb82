"""The embedded state store: one SQLite file in the state folder.

Every article row carries its shingle set, its signature and the fingerprint of the
configuration that made them; the ``links`` table holds the verified matches between articles,
from which the stories are rebuilt on opening (``articles.story_id`` mirrors them for readers).
Each ``add``/``add_many`` is one transaction, so a crash loses at most the batch in flight and
never leaves half of one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedup._errors import ConfigMismatchError, StateError
from dedup.sketch import Signature
from dedup.text.shingles import HashArray

SCHEMA_VERSION = "2"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    content_hash TEXT NOT NULL,
    story_id TEXT NOT NULL,
    action TEXT NOT NULL,
    best_match_id TEXT,
    similarity REAL NOT NULL,
    containment REAL NOT NULL,
    title TEXT NOT NULL, url TEXT NOT NULL, outlet TEXT NOT NULL, published TEXT NOT NULL,
    byline TEXT NOT NULL, fetched_at TEXT NOT NULL, outlet_is_agency INTEGER NOT NULL,
    credit TEXT, credit_where TEXT, credit_text TEXT, credit_via TEXT, embedded_in TEXT,
    fingerprint TEXT NOT NULL,
    shingles BLOB NOT NULL,
    signature BLOB NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS articles_story ON articles (story_id);
CREATE TABLE IF NOT EXISTS links (
    later INTEGER NOT NULL REFERENCES articles (seq),
    earlier INTEGER NOT NULL REFERENCES articles (seq),
    containment REAL NOT NULL,
    similarity REAL NOT NULL,
    PRIMARY KEY (later, earlier)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredArticle:
    seq: int
    id: str
    content_hash: str
    story_id: str
    action: str
    best_match_id: str | None
    similarity: float
    containment: float
    title: str
    url: str
    outlet: str
    published: str
    byline: str
    fetched_at: str
    outlet_is_agency: bool
    credit: str | None
    credit_where: str | None
    credit_text: str | None
    credit_via: str | None
    embedded_in: str | None
    shingles: HashArray
    signature: Signature
    text: str


_COLUMNS = (
    "seq, id, content_hash, story_id, action, best_match_id, similarity, containment, title, url, outlet, "
    "published, byline, fetched_at, outlet_is_agency, credit, credit_where, credit_text, credit_via, embedded_in, "
    "fingerprint, "
    "shingles, signature, text"
)


class SQLiteStore:
    """Articles and their story assignment in ``<state>/dedup.sqlite``."""

    FILENAME = "dedup.sqlite"

    def __init__(self, folder: str | Path, fingerprint: str) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.folder / self.FILENAME, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"cannot open the state in {self.folder}: {exc}. "
                "Is it a detector state folder? Point --state at an empty folder to start a new one."
            ) from exc
        self.fingerprint = fingerprint
        self._check_meta()

    def _check_meta(self) -> None:
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        where = str(self.folder / self.FILENAME)
        if not rows:
            with self.transaction():
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema", SCHEMA_VERSION), ("fingerprint", self.fingerprint)],
                )
            return
        if rows.get("schema") != SCHEMA_VERSION:
            raise StateError(f"{where} has schema {rows.get('schema')!r}; this version reads {SCHEMA_VERSION!r}")
        if rows.get("fingerprint") != self.fingerprint:
            raise ConfigMismatchError(rows.get("fingerprint", "?"), self.fingerprint, where)
        other = self._db.execute(
            "SELECT fingerprint FROM articles WHERE fingerprint != ? LIMIT 1", (self.fingerprint,)
        ).fetchone()
        if other:
            raise ConfigMismatchError(other[0], self.fingerprint, where)

    def transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def insert(self, row: StoredArticle) -> None:
        self._db.execute(
            f"INSERT INTO articles ({_COLUMNS}) VALUES ({', '.join('?' * 24)})",
            (
                row.seq, row.id, row.content_hash, row.story_id, row.action, row.best_match_id,
                row.similarity, row.containment, row.title, row.url, row.outlet, row.published,
                row.byline, row.fetched_at, int(row.outlet_is_agency), row.credit, row.credit_where,
                row.credit_text, row.credit_via, row.embedded_in, self.fingerprint,
                row.shingles.astype("<u4").tobytes(), row.signature.astype("<u4").tobytes(), row.text,
            ),
        )

    def insert_links(self, later: int, links: list[tuple[int, float, float]]) -> None:
        """The verified matches of article ``later``: (earlier seq, containment, similarity)."""
        self._db.executemany(
            "INSERT INTO links (later, earlier, containment, similarity) VALUES (?, ?, ?, ?)",
            [(later, earlier, containment, similarity) for earlier, containment, similarity in links],
        )

    def move(self, stories: list[tuple[str, int]]) -> None:
        """Record that articles (by seq) now belong to other stories: (story id, seq) pairs."""
        self._db.executemany("UPDATE articles SET story_id = ? WHERE seq = ?", stories)

    def load_links(self) -> Iterator[tuple[int, int, float]]:
        """(later, earlier, similarity) for every link, ordered by the later article."""
        yield from self._db.execute("SELECT later, earlier, similarity FROM links ORDER BY later, earlier")

    def shingles(self, seq: int) -> HashArray:
        row = self._db.execute("SELECT shingles FROM articles WHERE seq = ?", (seq,)).fetchone()
        return np.frombuffer(row[0], dtype="<u4").astype(np.uint32) if row else np.empty(0, dtype=np.uint32)

    def details(self, seq: int, fields: tuple[str, ...]) -> tuple[str | None, ...]:
        """Some plain columns of one article (names from the caller's fixed list)."""
        row = self._db.execute(f"SELECT {', '.join(fields)} FROM articles WHERE seq = ?", (seq,)).fetchone()
        return tuple(row) if row else (None,) * len(fields)

    def text(self, seq: int) -> str:
        row = self._db.execute("SELECT text FROM articles WHERE seq = ?", (seq,)).fetchone()
        return str(row[0]) if row else ""

    def __len__(self) -> int:
        """How many articles are stored."""
        return int(self._db.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

    def load(self, with_text: bool = True) -> Iterator[StoredArticle]:
        columns = _COLUMNS if with_text else _COLUMNS.replace(", text", ", ''")
        for r in self._db.execute(f"SELECT {columns} FROM articles ORDER BY seq"):
            yield StoredArticle(
                seq=r[0], id=r[1], content_hash=r[2], story_id=r[3], action=r[4], best_match_id=r[5],
                similarity=r[6], containment=r[7], title=r[8], url=r[9], outlet=r[10], published=r[11],
                byline=r[12], fetched_at=r[13], outlet_is_agency=bool(r[14]), credit=r[15],
                credit_where=r[16], credit_text=r[17], credit_via=r[18], embedded_in=r[19],
                shingles=np.frombuffer(r[21], dtype="<u4").astype(np.uint32),
                signature=np.frombuffer(r[22], dtype="<u4").astype(np.uint32),
                text=r[23],
            )

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
