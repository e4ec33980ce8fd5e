"""The embedded catalog: SQLite in DATA_DIR, uploads as files beside it.

SQLite has one writer at a time, so every transaction starts with BEGIN IMMEDIATE: a claim is atomic without row
locks, across processes of one machine too. WAL lets readers go on while one writes. Uploads stay files under
DATA_DIR/uploads (named by document id, never by the client's filename): a database of 50 MB blobs would only grow.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event

from rag_backend.catalog.base import Catalog
from rag_backend.catalog.migrate import migrate

BUSY_TIMEOUT_S = 5.0  # how long a write waits for another process's transaction before CatalogUnavailable
THREADS = 4  # readers go on in parallel under WAL; writers queue on the lock in these threads, not on the loop


class SqliteCatalog(Catalog):
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    kind = "sqlite"

    def __init__(self, path: Path, uploads: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        uploads.mkdir(parents=True, exist_ok=True)
        self.path, self.uploads = path, uploads
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _connect(dbapi: sqlite3.Connection, _: Any) -> None:
            dbapi.isolation_level = None  # no implicit BEGIN from the driver: ours below
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                dbapi.execute(f"PRAGMA {pragma}")

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        super().__init__(engine, threads=THREADS)
        migrate(engine)

    def upload_path(self, doc_id: str) -> Path:
        return self.uploads / doc_id

    def _store_upload(self, conn: Connection, doc_id: str, data: bytes) -> None:
        # Written inside the row's transaction: if the write fails the row is rolled back with it.
        self.upload_path(doc_id).write_bytes(data)

    def read_upload(self, doc_id: str) -> bytes | None:
        try:
            return self.upload_path(doc_id).read_bytes()
        except FileNotFoundError:
            return None

    def has_upload(self, doc_id: str) -> bool:
        return self.upload_path(doc_id).is_file()

    def drop_upload(self, doc_id: str) -> None:
        self.upload_path(doc_id).unlink(missing_ok=True)
