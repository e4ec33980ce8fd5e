"""The catalog: collections and documents (ingestion jobs) in SQLite under DATA_DIR.

Qdrant holds vectors, Redis holds throw-away cache entries; what a user uploaded, its state and which
embedding model a collection was indexed with must survive restarts, so it lives here. Calls are
sub-millisecond (WAL, synchronous=NORMAL), so they run on the event loop directly.

Visibility: a document's points are searchable only while its row is `ready`. Queries exclude the
ids of documents that have points but are not ready (being indexed, replaced or deleted), and every
change of that set bumps the collection's version, which is part of every retrieval cache key.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class DocumentStatus(StrEnum):
    """A document's (ingestion job's) state: the one list; the API schema and the page's types derive from it."""

    QUEUED = "queued"
    PARSING = "parsing"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    INDEXING = "indexing"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"


STAGES = tuple(DocumentStatus)[:5]
FINAL = (DocumentStatus.READY, DocumentStatus.FAILED)


def _sql_in(statuses: tuple[DocumentStatus, ...]) -> str:
    """A SQL list literal of statuses (enum values are fixed identifiers, never user input)."""
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


_IN_STAGES = _sql_in(STAGES)
_IN_UNFINISHED = _sql_in((*STAGES, DocumentStatus.DELETING))
_IN_REPLACEABLE = _sql_in((*STAGES, DocumentStatus.FAILED))
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    embed_key TEXT,          -- provider:model:dim, set by the first indexed document
    space TEXT,              -- the store's physical collection / shard
    version INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL REFERENCES collections(name),
    filename TEXT NOT NULL,
    format TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    chunks_done INTEGER NOT NULL DEFAULT 0,
    pages INTEGER,
    title TEXT,
    error TEXT,
    has_points INTEGER NOT NULL DEFAULT 0,
    waiting_since REAL,      -- set while the job waits out a dependency outage (see ingestion.outages)
    retry_reason TEXT,
    next_retry_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_collection ON documents(collection, status);
CREATE INDEX IF NOT EXISTS documents_sha ON documents(collection, sha256);
CREATE INDEX IF NOT EXISTS documents_name ON documents(collection, filename);
"""
# Columns added after the first release: a catalog written by an older backend gets them at open.
_ADDED_COLUMNS = {"waiting_since": "REAL", "retry_reason": "TEXT", "next_retry_at": "REAL"}
_NOT_WAITING = "waiting_since = NULL, retry_reason = NULL, next_retry_at = NULL"


@dataclass(slots=True)
class Collection:
    name: str
    embed_key: str | None
    space: str | None
    version: int
    created_at: float


class Catalog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)
        have = {r["name"] for r in self.db.execute("PRAGMA table_info(documents)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                self.db.execute(f"ALTER TABLE documents ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.db.close()

    def _tx(self) -> sqlite3.Connection:
        """`with catalog._tx():` — one atomic write (the connection is in autocommit otherwise)."""
        self.db.execute("BEGIN IMMEDIATE")
        return _Tx(self.db)  # type: ignore[return-value]

    # -- collections --------------------------------------------------------------------------------
    def get_collection(self, name: str) -> Collection | None:
        row = self.db.execute("SELECT * FROM collections WHERE name = ?", (name,)).fetchone()
        return Collection(**dict(row)) if row else None

    def create_collection(self, name: str) -> tuple[Collection, bool]:
        """Returns (collection, created).

        The version starts from the clock, not 0: a collection deleted and created again under the same name
        must not meet retrieval cache entries of its previous life (they carry the old versions)."""
        now = time.time()
        cur = self.db.execute(
            "INSERT OR IGNORE INTO collections(name, version, created_at) VALUES (?, ?, ?)",
            (name, time.time_ns() // 1000, now),
        )
        return self.get_collection(name), cur.rowcount == 1  # type: ignore[return-value]

    def bind_collection(self, name: str, embed_key: str, space: str) -> Collection:
        """Records the embedding model on first use; the caller compares it on every later use."""
        self.db.execute(
            "UPDATE collections SET embed_key = ?, space = ? WHERE name = ? AND embed_key IS NULL",
            (embed_key, space, name),
        )
        return self.get_collection(name)  # type: ignore[return-value]

    def list_collections(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            """SELECT c.*, COUNT(d.id) AS documents,
                      COALESCE(SUM(CASE WHEN d.status = :ready THEN d.chunks END), 0) AS chunks,
                      COALESCE(SUM(CASE WHEN d.status = :ready THEN 1 END), 0) AS ready,
                      COALESCE(SUM(CASE WHEN d.status = :failed THEN 1 END), 0) AS failed
               FROM collections c LEFT JOIN documents d ON d.collection = c.name AND d.status != :deleting
               GROUP BY c.name ORDER BY c.name""",
            {"ready": DocumentStatus.READY, "failed": DocumentStatus.FAILED, "deleting": DocumentStatus.DELETING},
        ).fetchall()
        return [dict(r) for r in rows]

    def delete_collection_rows(self, name: str) -> None:
        with self._tx():
            self.db.execute("DELETE FROM documents WHERE collection = ?", (name,))
            self.db.execute("DELETE FROM collections WHERE name = ?", (name,))

    def bump(self, name: str) -> None:
        self.db.execute("UPDATE collections SET version = version + 1 WHERE name = ?", (name,))

    # -- documents ----------------------------------------------------------------------------------
    def find_duplicate(self, collection: str, sha256: str) -> dict[str, Any] | None:
        """Same bytes already uploaded to this collection and not failed or on its way out."""
        row = self.db.execute(
            """SELECT * FROM documents WHERE collection = ? AND sha256 = ?
               AND status NOT IN (?, ?) ORDER BY created_at DESC LIMIT 1""",
            (collection, sha256, DocumentStatus.FAILED, DocumentStatus.DELETING),
        ).fetchone()
        return dict(row) if row else None

    def add_document(self, collection: str, filename: str, fmt: str, size: int, sha256: str) -> dict[str, Any]:
        """Inserts a queued document. Older uploads of the same name that are failed or still in flight are replaced
        at once (now `deleting`: see `retired`); a ready one is replaced when this one is published."""
        now = time.time()
        doc_id = str(uuid.uuid4())
        with self._tx():
            replaced = [
                r["id"]
                for r in self.db.execute(
                    f"SELECT id FROM documents WHERE collection = ? AND filename = ? AND status IN {_IN_REPLACEABLE}",
                    (collection, filename),
                )
            ]
            self.db.executemany(
                "UPDATE documents SET status = ?, updated_at = ? WHERE id = ?",
                [(DocumentStatus.DELETING, now, i) for i in replaced],
            )
            if replaced:
                self.bump(collection)
            self.db.execute(
                """INSERT INTO documents(id, collection, filename, format, size, sha256, status, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (doc_id, collection, filename, fmt, size, sha256, DocumentStatus.QUEUED, now, now),
            )
        return self.get_document(doc_id)  # type: ignore[return-value]

    def retired(self, collection: str, filename: str) -> list[dict[str, Any]]:
        """Versions of a file on their way out (replaced or deleted), whose points, upload and row are to go."""
        rows = self.db.execute(
            "SELECT * FROM documents WHERE collection = ? AND filename = ? AND status = ?",
            (collection, filename, DocumentStatus.DELETING),
        )
        return [dict(r) for r in rows]

    def requeue(self, doc_id: str) -> dict[str, Any] | None:
        """A failed document back to `queued` (its job runs again from the stored upload); None unless failed."""
        cur = self.db.execute(
            f"""UPDATE documents SET status = ?, progress = 0, chunks = 0, chunks_done = 0, error = NULL,
                {_NOT_WAITING}, updated_at = ? WHERE id = ? AND status = ?""",
            (DocumentStatus.QUEUED, time.time(), doc_id, DocumentStatus.FAILED),
        )
        return self.get_document(doc_id) if cur.rowcount == 1 else None

    def replaced_by(self, doc: dict[str, Any]) -> str | None:
        row = self.db.execute(
            """SELECT id FROM documents WHERE collection = ? AND filename = ? AND status = ? AND id != ?
               ORDER BY created_at DESC LIMIT 1""",
            (doc["collection"], doc["filename"], DocumentStatus.READY, doc["id"]),
        ).fetchone()
        return row["id"] if row else None

    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM documents WHERE id = ?", (doc_id,)).fetchone()
        return dict(row) if row else None

    def list_documents(
        self, collection: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        where, args = ["status != ?"], [DocumentStatus.DELETING]
        if collection:
            where.append("collection = ?")
            args.append(collection)
        if status:
            where.append("status = ?")
            args.append(status)
        clause = " AND ".join(where)
        total = self.db.execute(f"SELECT COUNT(*) FROM documents WHERE {clause}", args).fetchone()[0]
        rows = self.db.execute(
            f"SELECT * FROM documents WHERE {clause} ORDER BY created_at DESC LIMIT ? OFFSET ?", [*args, limit, offset]
        ).fetchall()
        return [dict(r) for r in rows], total

    def set_stage(self, doc_id: str, stage: str, **fields: Any) -> bool:
        """Moves an in-flight job on; False when it was superseded or deleted meanwhile (the job stops)."""
        cols = "".join(f", {k} = ?" for k in fields)
        sql = f"UPDATE documents SET status = ?, updated_at = ?{cols} WHERE id = ? AND status IN {_IN_STAGES}"
        cur = self.db.execute(sql, (stage, time.time(), *fields.values(), doc_id))
        return cur.rowcount == 1

    def set_fields(self, doc_id: str, **fields: Any) -> None:
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(
            f"UPDATE documents SET {cols}, updated_at = ? WHERE id = ?", (*fields.values(), time.time(), doc_id)
        )

    def fail(self, doc_id: str, reason: str) -> None:
        self.db.execute(
            f"UPDATE documents SET status = ?, error = ?, {_NOT_WAITING}, updated_at = ? "
            f"WHERE id = ? AND status IN {_IN_STAGES}",
            (DocumentStatus.FAILED, reason[:2000], time.time(), doc_id),
        )

    def publish(self, doc_id: str, collection: str) -> list[str] | None:
        """Atomically: this document becomes visible and older versions of the same file stop being.

        Returns the ids of the versions it replaced (now `deleting`), or None if the job was superseded.
        """
        now = time.time()
        with self._tx():
            cur = self.db.execute(
                f"UPDATE documents SET status = ?, progress = 1, error = NULL, {_NOT_WAITING}, updated_at = ? "
                "WHERE id = ? AND status = ?",
                (DocumentStatus.READY, now, doc_id, DocumentStatus.INDEXING),
            )
            if cur.rowcount != 1:
                return None
            doc = self.get_document(doc_id)
            assert doc is not None
            old = [
                r["id"]
                for r in self.db.execute(
                    "SELECT id FROM documents WHERE collection = ? AND filename = ? AND status = ? AND id != ?",
                    (collection, doc["filename"], DocumentStatus.READY, doc_id),
                )
            ]
            self.db.executemany(
                "UPDATE documents SET status = ?, updated_at = ? WHERE id = ?",
                [(DocumentStatus.DELETING, now, i) for i in old],
            )
            self.bump(collection)
        return old

    def mark_deleting(self, doc_id: str) -> dict[str, Any] | None:
        """Hides the document at once (queries stop seeing it) before its points are removed."""
        with self._tx():
            doc = self.get_document(doc_id)
            if doc is None or doc["status"] == DocumentStatus.DELETING:
                return doc
            self.db.execute(
                "UPDATE documents SET status = ?, updated_at = ? WHERE id = ?",
                (DocumentStatus.DELETING, time.time(), doc_id),
            )
            self.bump(doc["collection"])
        return self.get_document(doc_id)

    def remove_document(self, doc_id: str) -> None:
        self.db.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    def hidden_ids(self, collection: str) -> list[str]:
        rows = self.db.execute(
            "SELECT id FROM documents WHERE collection = ? AND has_points = 1 AND status != ?",
            (collection, DocumentStatus.READY),
        )
        return [r[0] for r in rows]

    def unfinished(self) -> list[dict[str, Any]]:
        rows = self.db.execute(f"SELECT * FROM documents WHERE status IN {_IN_UNFINISHED}")
        return [dict(r) for r in rows]

    def failed_with_points(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM documents WHERE status = ? AND has_points = 1", (DocumentStatus.FAILED,))
        return [dict(r) for r in rows]

    def counts_by_status(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT status, COUNT(*) FROM documents GROUP BY status")}


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
