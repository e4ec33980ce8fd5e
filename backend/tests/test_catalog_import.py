"""`rag-backend import-catalog`: a one-machine stack's SQLite catalog copied into PostgreSQL (a real one, a database
of the test's own), from the first released schema and from the current one. The whole upgrade, with the documents'
points found again and an interrupted job resumed, is in test_scale_out."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import backend_env
from test_catalog import ME, OLD_SQLITE_SCHEMA, _walk

from rag_backend.catalog import Catalog, DocumentStatus, open_catalog
from rag_backend.catalog.transfer import copy_catalog
from rag_backend.errors import Conflict, InvalidInput


@pytest.fixture
def target(database_url: str, tmp_path: Path) -> Iterator[Catalog]:
    cat = open_catalog(database_url, tmp_path / "unused")
    yield cat
    cat.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _current_source(data_dir: Path) -> dict[str, str]:
    """A catalog the current release wrote: a ready document, a queued one with its upload, a failed one without."""
    cat = open_catalog(None, data_dir)
    try:
        cat.create_collection("c")
        ready = cat.add_document("c", "ready.md", "markdown", 5, "s1", b"ready")
        queued = cat.add_document("c", "queued.md", "markdown", 6, "s2", b"queued")
        failed = cat.add_document("c", "failed.md", "markdown", 6, "s3", b"failed")
        cat.bind_collection("c", "onnx:minilm:384", "space-384")
        for doc in (ready, failed):
            assert cat.take(doc["id"], ME, 30)
        _walk(cat, ready["id"], DocumentStatus.PARSING, DocumentStatus.EMBEDDING, DocumentStatus.INDEXING)
        cat.set_fields(ready["id"], chunks=3, chunks_sha="abc")
        assert cat.publish(ready["id"], "c", ME) is not None
        assert cat.fail(failed["id"], "unreadable", ME)
        cat.drop_upload(ready["id"])
        cat.drop_upload(failed["id"])
        assert cat.take(queued["id"], ME, 30)  # the old process held it when it stopped: the copy clears that
    finally:
        cat.close()
    return {"ready": ready["id"], "queued": queued["id"], "failed": failed["id"]}


def test_a_current_catalog_is_copied_with_its_uploads_and_a_second_run_adds_nothing(
    tmp_path: Path, target: Catalog
) -> None:
    ids = _current_source(tmp_path)
    source = tmp_path / "catalog.sqlite3"
    before = _digest(source)

    report = copy_catalog(source, tmp_path / "uploads", target)
    assert (report.collections_added, report.documents_added, report.uploads, report.uploads_missing) == (1, 3, 1, 0)
    assert _digest(source) == before  # read-only: the old release can still start on it

    coll = target.get_collection("c")
    assert coll and (coll.embed_key, coll.space) == ("onnx:minilm:384", "space-384")
    ready = target.get_document(ids["ready"])
    assert ready and ready["status"] == DocumentStatus.READY and ready["chunks_sha"] == "abc"
    assert target.get_document(ids["failed"])["error"] == "unreadable"  # type: ignore[index]
    assert target.read_upload(ids["queued"]) == b"queued"
    claimed = target.claim("host:9:new", 30, 10)  # the queued job's old lease is gone: the first worker takes it
    assert ids["queued"] in {d["id"] for d in claimed}

    again = copy_catalog(source, tmp_path / "uploads", target)
    assert (again.documents_added, again.documents_present, again.uploads) == (0, 3, 0)
    assert again.collections_merged == 1 and target.get_collection("c").version > coll.version  # type: ignore[union-attr]


def test_the_first_released_schema_is_read_as_it_is(tmp_path: Path, target: Catalog) -> None:
    """No alembic_version, no outage or lease columns: the columns both sides have are copied, the rest default;
    an unfinished job whose upload file is gone is counted, so the operator knows it will fail."""
    source = tmp_path / "catalog.sqlite3"
    with sqlite3.connect(source) as db:
        db.executescript(OLD_SQLITE_SCHEMA)
    before = _digest(source)
    report = copy_catalog(source, tmp_path / "uploads", target)
    assert (report.documents_added, report.uploads, report.uploads_missing) == (1, 0, 1)
    doc = target.get_document("old-doc")
    assert doc and doc["status"] == DocumentStatus.EMBEDDING and doc["attempts"] == 0 and doc["lease_owner"] is None
    assert _digest(source) == before
    with sqlite3.connect(source) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "alembic_version" not in tables


def test_a_collection_bound_to_another_model_refuses_the_whole_copy(
    tmp_path: Path, target: Catalog, database_url: str
) -> None:
    _current_source(tmp_path)
    target.create_collection("c")
    target.create_collection("only-here")
    target.bind_collection("c", "openai:text-embedding-3-small:1536", "space-1536")
    with pytest.raises(Conflict, match="'c' \\(onnx:minilm:384 here, openai:text-embedding-3-small:1536"):
        copy_catalog(tmp_path / "catalog.sqlite3", tmp_path / "uploads", target)
    with psycopg.connect(database_url) as conn:  # nothing was written: no rows, no uploads, collections as they were
        assert conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM uploads").fetchone()[0] == 0
        assert conn.execute("SELECT name FROM collections ORDER BY name").fetchall() == [("c",), ("only-here",)]


def test_an_unbound_collection_in_the_target_takes_the_source_model(tmp_path: Path, target: Catalog) -> None:
    """A fresh stack created `c` (an upload that has not been embedded yet): the copy binds it and keeps both."""
    ids = _current_source(tmp_path)
    target.create_collection("c")
    report = copy_catalog(tmp_path / "catalog.sqlite3", tmp_path / "uploads", target)
    assert (report.collections_added, report.collections_merged, report.documents_added) == (0, 1, 3)
    assert target.get_collection("c").embed_key == "onnx:minilm:384"  # type: ignore[union-attr]
    assert target.get_document(ids["ready"])["status"] == DocumentStatus.READY  # type: ignore[index]


@pytest.mark.parametrize("content", [None, b"not a database at all" * 100])
def test_a_missing_or_foreign_file_is_refused_with_its_path(
    tmp_path: Path, target: Catalog, content: bytes | None
) -> None:
    source = tmp_path / "catalog.sqlite3"
    if content is not None:
        source.write_bytes(content)
    with pytest.raises(InvalidInput, match=str(source)):
        copy_catalog(source, tmp_path / "uploads", target)


def test_the_command_needs_a_target_and_names_what_went_wrong(tmp_path: Path, database_url: str) -> None:
    run = [sys.executable, "-m", "rag_backend", "import-catalog"]
    out = subprocess.run(run, env=backend_env(tmp_path, "http://127.0.0.1:1"), capture_output=True, text=True)
    assert out.returncode == 2 and "set DATABASE_URL" in out.stderr
    env = backend_env(tmp_path, "http://127.0.0.1:1", DATABASE_URL=database_url)
    out = subprocess.run(run, env=env, capture_output=True, text=True)
    assert out.returncode == 1 and f"no SQLite catalog at {tmp_path / 'catalog.sqlite3'}" in out.stderr
