"""The catalog's behaviour, one suite run on both implementations: SQLite in a temporary DATA_DIR and a real
PostgreSQL (a database of the test's own, created and dropped; see conftest `database_url`).

Job states and visibility, supersession, uploads stored with their rows, and the job queue: claims, leases, their
expiry and takeover, fenced writes, concurrent claimers that never take the same row. Plus what only one of them
has: the adoption of a SQLite catalog written before migrations existed, and a PostgreSQL that goes away.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from devharness.postgres import scratch_database

from rag_backend.catalog import Catalog, CatalogUnavailable, DocumentStatus, open_catalog
from rag_backend.catalog import sqlite as sqlite_catalog

ME, OTHER = "host:1:me", "host:2:other"
Opener = Callable[[], Catalog]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens catalogs on one database (each call its own engine and connections, as another process would)."""
    opened: list[Catalog] = []
    if request.param == "sqlite":
        url = None
    else:
        url = request.getfixturevalue("database_url")

    def open_one() -> Catalog:
        cat = open_catalog(url, tmp_path)
        opened.append(cat)
        return cat

    yield open_one
    for cat in opened:
        cat.close()


@pytest.fixture
def cat(opener: Opener) -> Catalog:
    return opener()


def _add(cat: Catalog, name: str = "a.md", sha: str = "sha", data: bytes = b"bytes") -> dict:
    cat.create_collection("c")
    return cat.add_document("c", name, "markdown", len(data), sha, data)


def _walk(cat: Catalog, doc_id: str, *stages: DocumentStatus) -> None:
    for stage in stages:
        assert cat.set_stage(doc_id, stage, ME), stage


def test_a_job_walks_its_states_and_replaces_the_old_version(cat: Catalog) -> None:
    old = _add(cat, sha="sha-old")
    assert old["status"] == DocumentStatus.QUEUED and old["attempts"] == 0  # runs started
    assert [d["id"] for d in cat.claim(ME, 30, 5)] == [old["id"]]
    _walk(cat, old["id"], DocumentStatus.PARSING, DocumentStatus.CHUNKING, DocumentStatus.EMBEDDING)
    cat.set_fields(old["id"], has_points=1)
    assert cat.hidden_ids("c") == [old["id"]]  # points written, not yet ready: hidden
    assert cat.publish(old["id"], "c", ME) is None  # only an `indexing` job can be published
    _walk(cat, old["id"], DocumentStatus.INDEXING)
    assert cat.publish(old["id"], "c", ME) == []
    published = cat.get_document(old["id"])
    assert published["lease_owner"] is None and published["status"] == DocumentStatus.READY
    assert cat.hidden_ids("c") == [] and not cat.set_stage(old["id"], DocumentStatus.PARSING, ME)

    new = _add(cat, sha="sha-new")
    assert cat.replaced_by(new) == old["id"]
    assert cat.find_duplicate("c", "sha-new")["id"] == new["id"]
    assert [d["id"] for d in cat.claim(ME, 30, 5)] == [new["id"]]
    _walk(cat, new["id"], DocumentStatus.PARSING, DocumentStatus.INDEXING)
    version = cat.get_collection("c").version
    assert cat.publish(new["id"], "c", ME) == [old["id"]]
    assert cat.get_collection("c").version > version  # retrieval caches keyed on the old version are bypassed
    assert cat.get_document(old["id"])["status"] == DocumentStatus.DELETING
    assert [d["id"] for d in cat.claim(OTHER, 30, 5)] == [old["id"]]  # its purge is work anyone may claim
    (row,) = cat.list_collections()
    assert (row["documents"], row["ready"], row["failed"]) == (1, 1, 0)


def test_failures_supersession_and_retry(cat: Catalog) -> None:
    first = _add(cat, sha="sha-1")
    second = _add(cat, sha="sha-2")  # replaces the one still in flight
    assert cat.get_document(first["id"])["status"] == DocumentStatus.DELETING
    assert [d["id"] for d in cat.retired("c", "a.md")] == [first["id"]]
    cat.remove_document(first["id"])
    assert cat.get_document(first["id"]) is None and not cat.has_upload(first["id"])

    assert [d["id"] for d in cat.claim(ME, 30, 5)] == [second["id"]]
    cat.set_fields(second["id"], has_points=1)
    assert not cat.fail(second["id"], "boom", OTHER)  # fenced: only the holder ends its job
    assert cat.fail(second["id"], "boom", ME) and cat.get_document(second["id"])["error"] == "boom"
    assert cat.requeue(second["id"]) is None  # still leased: its holder is dropping its points
    assert cat.claim(OTHER, 30, 5) == []
    cat.release(second["id"], ME)
    assert [d["id"] for d in cat.claim(OTHER, 30, 5)] == [second["id"]]  # failed with points: a clean-up
    cat.set_fields(second["id"], has_points=0)
    cat.release(second["id"], OTHER)
    assert cat.claim(ME, 30, 5) == []  # failed without points: nothing to do
    assert cat.find_duplicate("c", "sha-2") is None  # a failed upload may be sent again

    requeued = cat.requeue(second["id"])
    assert requeued["status"] == DocumentStatus.QUEUED and requeued["error"] is None and requeued["attempts"] == 0
    assert cat.requeue(second["id"]) is None  # no longer failed
    third = _add(cat, sha="sha-3")  # replaces the queued one at once
    assert cat.get_document(second["id"])["status"] == DocumentStatus.DELETING
    assert cat.list_documents("c", None, 10, 0)[1] == 1  # the deleting one is gone from listings
    assert cat.counts_by_status() == {"queued": 1, "deleting": 1}
    assert cat.mark_deleting(third["id"])["status"] == DocumentStatus.DELETING
    assert {d["id"] for d in cat.claim(OTHER, 30, 10)} == {second["id"], third["id"]}  # both purges are work


def test_uploads_are_stored_with_their_row_and_go_with_it(opener: Opener) -> None:
    api, worker = opener(), opener()  # the worker reads what the API stored, through its own connections
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    doc = _add(api, data=data)
    assert worker.read_upload(doc["id"]) == data and worker.has_upload(doc["id"])
    worker.drop_upload(doc["id"])
    assert api.read_upload(doc["id"]) is None and not api.has_upload(doc["id"])
    other = _add(api, name="b.md", sha="sha-b", data=b"b")
    api.remove_document(other["id"])
    assert worker.read_upload(other["id"]) is None and worker.get_document(other["id"]) is None


def test_a_lease_fences_writes_and_expires_into_a_takeover(opener: Opener) -> None:
    mine, theirs = opener(), opener()
    doc = _add(mine)
    (claimed,) = mine.claim(ME, 1.0, 5)
    assert claimed["lease_owner"] == ME and claimed["attempts"] == 1  # its first run
    assert theirs.claim(OTHER, 30, 5) == [] and not theirs.take(doc["id"], OTHER, 30)
    _walk(mine, doc["id"], DocumentStatus.PARSING, DocumentStatus.EMBEDDING)
    assert mine.renew(ME, 1.0) == {doc["id"]: DocumentStatus.EMBEDDING}
    assert not theirs.take(doc["id"], OTHER, 30)  # renewed: still held

    time.sleep(1.2)  # the holder stopped renewing (killed): its lease runs out
    (taken,) = theirs.claim(OTHER, 30, 5)
    assert taken["id"] == doc["id"] and taken["status"] == DocumentStatus.EMBEDDING and taken["attempts"] == 2
    assert mine.renew(ME, 30) == {}  # the heartbeat learns it lost the job
    assert not mine.set_stage(doc["id"], DocumentStatus.INDEXING, ME)  # and cannot move it on
    assert theirs.set_stage(doc["id"], DocumentStatus.INDEXING, OTHER)
    assert mine.publish(doc["id"], "c", ME) is None  # nor publish it: one completion, by the holder
    assert theirs.publish(doc["id"], "c", OTHER) == []


def test_release_with_a_delay_and_release_all(cat: Catalog) -> None:
    doc = _add(cat)
    cat.claim(ME, 30, 1)
    cat.release(doc["id"], ME, retry_in_s=0.6)  # e.g. its clean-up met a store outage
    assert cat.claim(OTHER, 30, 5) == []
    time.sleep(0.8)
    assert [d["id"] for d in cat.claim(OTHER, 30, 5)] == [doc["id"]]
    assert cat.release_all() == 1 and cat.get_document(doc["id"])["lease_owner"] is None
    assert cat.take(doc["id"], ME, 30) and cat.take(doc["id"], ME, 30)  # taking what one holds again is fine


def test_a_deleted_collection_is_hidden_at_once_then_removed_by_whoever_holds_its_job(opener: Opener) -> None:
    mine, theirs = opener(), opener()
    running = _add(mine)
    waiting = _add(mine, "b.md", "sha-b")
    mine.bind_collection("c", "ml-api:m:4", "space")
    (held,) = mine.claim(ME, 30, 1)  # a job of this process holds one document of it
    assert held["id"] == running["id"]

    assert mine.mark_collection_deleting("c") and not mine.mark_collection_deleting("c")
    assert theirs.list_collections() == [] and theirs.get_collection("c") is None
    assert theirs.list_documents("c", None, 10, 0) == ([], 0)
    assert theirs.get_collection("c", deleting=True).space == "space"  # its clean-up still finds its points
    assert theirs.create_collection("c")[1] is False  # not created again while on its way out
    assert theirs.claim(OTHER, 30, 5) == []  # its documents are the collection's job, not one job each

    coll = theirs.claim_collection(OTHER, 1.0)
    assert coll is not None and coll.name == "c" and mine.claim_collection(ME, 30) is None
    assert theirs.documents_held("c") == 1  # wait: the running job has not let go of its row yet
    mine.release(held["id"], ME)
    assert theirs.documents_held("c") == 0

    time.sleep(1.2)  # the claimer stopped renewing (killed): another takes the deletion over
    taken = mine.claim_collection(ME, 30)
    assert taken is not None and taken.lease_owner == ME
    assert not theirs.drop_collection("c", OTHER)  # fenced: the old holder removes nothing
    assert mine.has_upload(waiting["id"])
    assert mine.drop_collection("c", ME)
    assert mine.get_collection("c", deleting=True) is None and mine.get_document(waiting["id"]) is None
    assert not mine.has_upload(waiting["id"]) and not mine.has_upload(running["id"])
    assert theirs.create_collection("c")[1] is True


def test_concurrent_claimers_never_take_the_same_job(opener: Opener) -> None:
    setup = opener()
    ids = {_add(setup, name=f"d{i}.md", sha=f"sha-{i}")["id"] for i in range(40)}
    claimers = [opener() for _ in range(4)]
    taken: dict[str, list[str]] = {}
    start = threading.Barrier(len(claimers))

    def claim_all(n: int, cat: Catalog) -> None:
        owner = f"host:{n}:x"
        start.wait()
        while rows := cat.claim(owner, 30, 3):
            taken.setdefault(owner, []).extend(r["id"] for r in rows)

    threads = [threading.Thread(target=claim_all, args=(n, c)) for n, c in enumerate(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [d for ds in taken.values() for d in ds]
    assert sorted(every) == sorted(ids)  # all claimed, none twice
    assert {setup.get_document(d)["lease_owner"] for d in ids} == set(taken)


def test_reopening_migrates_nothing_and_keeps_the_data(opener: Opener) -> None:
    doc = _add(opener())
    again = opener()
    assert again.get_document(doc["id"])["status"] == DocumentStatus.QUEUED
    assert again.read_upload(doc["id"]) == b"bytes"


OLD_SQLITE_SCHEMA = """
CREATE TABLE collections (name TEXT PRIMARY KEY, embed_key TEXT, space TEXT, version INTEGER NOT NULL DEFAULT 0,
                          created_at REAL NOT NULL);
CREATE TABLE documents (id TEXT PRIMARY KEY, collection TEXT NOT NULL REFERENCES collections(name),
    filename TEXT NOT NULL, format TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0, chunks_done INTEGER NOT NULL DEFAULT 0,
    pages INTEGER, title TEXT, error TEXT, has_points INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
    updated_at REAL NOT NULL);
INSERT INTO collections VALUES ('c', NULL, NULL, 7, 1.0);
INSERT INTO documents(id, collection, filename, format, size, sha256, status, created_at, updated_at)
    VALUES ('old-doc', 'c', 'a.md', 'markdown', 5, 'sha', 'embedding', 1.0, 1.0);
"""


def test_a_sqlite_catalog_from_before_migrations_is_adopted(tmp_path: Path) -> None:
    """The first released schema (no alembic_version, no outage or lease columns), interrupted mid-job."""
    with sqlite3.connect(tmp_path / "catalog.sqlite3") as db:
        db.executescript(OLD_SQLITE_SCHEMA)
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "old-doc").write_bytes(b"hello")
    cat = open_catalog(None, tmp_path)
    try:
        assert cat.get_collection("c").version == 7
        (resumed,) = cat.claim(ME, 30, 5)  # the interrupted job is work again
        assert resumed["id"] == "old-doc" and resumed["waiting_since"] is None and resumed["attempts"] == 1
        assert cat.read_upload("old-doc") == b"hello"
    finally:
        cat.close()


def test_a_locked_sqlite_catalog_is_unavailable_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_catalog, "BUSY_TIMEOUT_S", 0.1)
    cat = open_catalog(None, tmp_path)
    other = sqlite3.connect(tmp_path / "catalog.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        with pytest.raises(CatalogUnavailable, match="locked"):
            cat.create_collection("c")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert cat.create_collection("c")[1]  # and it works again once the lock is gone
    cat.close()


def test_a_postgres_that_goes_away_is_unavailable_then_reconnects(postgres_admin: str) -> None:
    with scratch_database(postgres_admin) as url:
        cat = open_catalog(url, Path("unused"))
        assert cat.create_collection("c")[1]
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        assert cat.get_collection("c") is not None  # pre-ping: a restarted server costs a reconnect, not an error
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        with pytest.raises(CatalogUnavailable, match="catalog database"):
            cat.get_collection("c")
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        assert cat.get_collection("c") is not None
        cat.close()


def test_an_unreachable_postgres_is_named_without_its_password() -> None:
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog("postgresql://rag:s3cret-pw@127.0.0.1:1/rag", Path("unused"))
    assert "127.0.0.1:1/rag" in caught.value.message and "refused" in caught.value.message
    assert "s3cret-pw" not in caught.value.message


def test_marking_a_deletion_returns_the_row_even_when_a_purge_lands_right_after(cat: Catalog) -> None:
    """Another claimer (the claim loop takes `deleting` rows too) may purge the row as soon as the mark commits;
    the deletion must still answer with the row it marked, not report the document as never found."""
    cat.create_collection("c")
    doc = cat.add_document("c", "d.txt", "text", 1, "sha", b"x")
    read = cat.get_document

    def purged_first(doc_id: str) -> dict[str, Any] | None:
        cat.remove_document(doc_id)  # the claim loop's purge, between the mark and any later read
        return read(doc_id)

    cat.get_document = purged_first  # type: ignore[method-assign]
    try:
        marked = cat.mark_deleting(doc["id"])
    finally:
        cat.get_document = read  # type: ignore[method-assign]
    assert marked is not None and marked["id"] == doc["id"] and marked["status"] == DocumentStatus.DELETING
    cat.remove_document(doc["id"])
    assert cat.mark_deleting(doc["id"]) is None  # unknown now
