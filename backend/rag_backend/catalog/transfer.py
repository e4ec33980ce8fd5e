"""Copying a SQLite catalog into a shared one: the upgrade of a one-machine stack to PostgreSQL.

A compose stack from before PostgreSQL kept its catalog in DATA_DIR/catalog.sqlite3 and its uploads in flight beside
it, while its vectors sit in the Qdrant server that the new stack keeps using. Without the rows, those documents would
vanish from the page and their points would be orphans. Point ids and the store's space derive from the document id
and the collection's embedding model, so copying the rows as they are makes every point findable again.

The source is opened read-only (`mode=ro`), never migrated: the old release can still be started on it. Any schema
the backend ever wrote is read, by taking the columns both sides have. The copy is one transaction on the target and
can be run again: rows already there are kept, not overwritten. A collection that the target already bound to another
embedding model refuses the whole copy, since its points could not be searched with one query vector.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, inspect, text

from rag_backend.catalog.base import STAGES, Catalog, DocumentStatus
from rag_backend.errors import Conflict, InvalidInput

_UNFINISHED = {s.value for s in STAGES}  # the job resumes from its upload
_GOING = DocumentStatus.DELETING.value  # every other document keeps its upload (served as its original)


@dataclass(slots=True)
class CopyReport:
    collections_added: int = 0
    collections_merged: int = 0
    documents_added: int = 0
    documents_present: int = 0  # the same id was already in the target (a second run)
    uploads: int = 0
    uploads_missing: int = 0  # unfinished documents whose upload file was gone: they will fail, with a reason
    texts: int = 0  # parsed texts (what results' char_start/char_end index)

    def summary(self) -> str:
        return (
            f"collections: {self.collections_added} added, {self.collections_merged} merged; "
            f"documents: {self.documents_added} added, {self.documents_present} already present; "
            f"uploads: {self.uploads} copied, {self.uploads_missing} missing; texts: {self.texts} copied"
        )


def read_sqlite(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The collections and documents of a SQLite catalog file, read without writing to it."""
    if not path.is_file():
        raise InvalidInput(f"no SQLite catalog at {path}")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            db.row_factory = sqlite3.Row
            collections = [dict(r) for r in db.execute("SELECT * FROM collections ORDER BY name")]
            documents = [dict(r) for r in db.execute("SELECT * FROM documents ORDER BY created_at, id")]
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path} is not a readable catalog: {exc}") from None
    return collections, documents


def copy_catalog(path: Path, uploads: Path, target: Catalog) -> CopyReport:
    """Copies the catalog at `path` (uploads in flight under `uploads`) into `target`, in one transaction."""
    collections, documents = read_sqlite(path)
    report = CopyReport()
    with target._tx() as conn:
        _copy_collections(conn, collections, report)
        columns = {c["name"] for c in inspect(conn).get_columns("documents")}
        present = {r[0] for r in conn.execute(text("SELECT id FROM documents"))}
        for doc in documents:
            if doc["id"] in present:
                report.documents_present += 1
                continue
            row = {k: v for k, v in doc.items() if k in columns}
            row.update(lease_owner=None, lease_until=None)  # nobody works on it now: the first worker claims it
            names = ", ".join(row)
            values = ", ".join(f":{k}" for k in row)
            conn.execute(text(f"INSERT INTO documents ({names}) VALUES ({values})"), row)
            report.documents_added += 1
            if doc["status"] != _GOING:
                _copy_upload(conn, target, uploads / doc["id"], doc, report)
                _copy_text(conn, path, doc["id"], report)
    return report


def _copy_text(conn: Connection, path: Path, doc_id: str, report: CopyReport) -> None:
    """The document's parsed text, if the source kept one (catalogs from before texts were kept have none)."""
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        try:
            row = db.execute("SELECT data FROM texts WHERE document_id = ?", (doc_id,)).fetchone()
        except sqlite3.OperationalError:  # no texts table
            return
    if row is not None:
        conn.execute(text("INSERT INTO texts(document_id, data) VALUES (:id, :data)"), {"id": doc_id, "data": row[0]})
        report.texts += 1


def _copy_collections(conn: Connection, collections: list[dict[str, Any]], report: CopyReport) -> None:
    """Adds the missing collections and binds unbound ones; refuses, before anything is written, a collection bound
    to another embedding model on each side."""
    existing = {r["name"]: dict(r) for r in conn.execute(text("SELECT * FROM collections")).mappings()}
    clashes = []
    for c in collections:
        have = existing.get(c["name"])
        if (
            have
            and c["embed_key"]
            and have["embed_key"]
            and (c["embed_key"], c["space"]) != (have["embed_key"], have["space"])
        ):
            clashes.append(f"{c['name']!r} ({c['embed_key']} here, {have['embed_key']} in the target)")
    if clashes:
        raise Conflict(
            "collections indexed with another embedding model in the target: " + "; ".join(clashes)
            + ". Nothing was copied; delete or rename them in the target first."
        )  # fmt: skip
    for c in collections:
        have = existing.get(c["name"])
        if have is None:
            conn.execute(
                text(
                    "INSERT INTO collections(name, embed_key, space, version, created_at) "
                    "VALUES (:name, :embed_key, :space, :version, :created_at)"
                ),
                {k: c[k] for k in ("name", "embed_key", "space", "version", "created_at")},
            )
            report.collections_added += 1
            continue
        # Same model, or one side not bound yet: one collection. A new version, since what it holds changes.
        conn.execute(
            text(
                "UPDATE collections SET embed_key = COALESCE(embed_key, :key), space = COALESCE(space, :space), "
                "version = :version WHERE name = :name"
            ),
            {"key": c["embed_key"], "space": c["space"], "name": c["name"],
             "version": max(int(have["version"]), int(c["version"])) + 1},
        )  # fmt: skip
        report.collections_merged += 1


def _copy_upload(conn: Connection, target: Catalog, file: Path, doc: dict[str, Any], report: CopyReport) -> None:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        if doc["status"] in _UNFINISHED:  # a failed one without its file only loses `retry`
            report.uploads_missing += 1
        return
    target._store_upload(conn, doc["id"], data)
    report.uploads += 1
