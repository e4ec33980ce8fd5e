"""Several processes on one catalog: `rag-backend serve` replicas with INGEST_WORKERS=0 and `rag-backend worker`s, on
a real PostgreSQL (a database of the test's own), the real Redis, the real ml-api (test models).

How the store is handled: a Qdrant server cannot run on this machine and both embedded engines (qdrant-edge,
qdrant-client's local mode) belong to one process. Every backend process here therefore talks to one Qdrant REST
stand-in (devharness.qdrant_standin: qdrant-client's local mode behind the subset of Qdrant's REST API the store
uses) through the backend's real server store (QDRANT_URL, qdrant-client over HTTP). Everything the backend does is
real; what a real Qdrant cluster adds (sharding, replication, write consistency, concurrent writers inside the
engine, failover) is not exercised here, and the stand-in serialises all store calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import Proc, backend_env, free_port, start, start_backend, wait_ready
from devharness import wait_for
from devharness.qdrant_standin import start_standin

from rag_backend.store import QdrantServerStore

LEASE_S = 3  # short, so a takeover after a SIGKILL happens within seconds
WORDS = "magma basalt crater caldera tephra lahar fumarole obsidian pumice rhyolite andesite scoria".split()


def _long_text(paragraphs: int, seed: int = 0) -> bytes:
    """Distinct paragraphs (chunking keeps them apart), enough for hundreds of chunks at CHUNK_TOKENS=64."""
    out = []
    for p in range(paragraphs):
        words = [WORDS[(p * 7 + i * (seed + 3)) % len(WORDS)] for i in range(40)]
        out.append(f"Section {p}. " + " ".join(words) + ".")
    return "\n\n".join(out).encode()


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[str]:
    service = start_standin(tmp_path / "standin.log")
    yield service.url
    service.stop(10)


@pytest.fixture
def shared_env(database_url: str, standin: str, redis_url: str, prefix: str) -> dict[str, str]:
    """What every process of the deployment shares: catalog, store, cache, lease timing, small embed batches (so
    a job is many batches long and can be killed in the middle)."""
    return {
        "DATABASE_URL": database_url,
        "QDRANT_URL": standin,
        "REDIS_URL": redis_url,
        "CACHE_PREFIX": prefix,
        "INGEST_LEASE_S": str(LEASE_S),
        "INGEST_POLL_S": "0.2",
        "CHUNK_TOKENS": "64",
        "CHUNK_OVERLAP_TOKENS": "8",
        "EMBED_BATCH_SIZE": "4",
        "EMBED_CONCURRENCY": "1",
    }


def start_worker(tmp: Path, ml_api_url: str, name: str, env: dict[str, str], concurrency: int = 1) -> Proc:
    port = free_port()
    full = backend_env(tmp / f"{name}-data", ml_api_url, WORKER_PORT=str(port), **env)
    cmd = [sys.executable, "-m", "rag_backend", "worker", "--concurrency", str(concurrency)]
    return start(name, cmd, full, tmp / f"{name}.log", port, timeout=60)


def _row(database_url: str, doc_id: str) -> dict | None:
    """The document's row, read with the database's own driver (a path: the SQLite catalog of a shared DATA_DIR)."""
    if database_url.startswith("postgresql://"):
        with psycopg.connect(database_url) as conn:
            cur = conn.execute("SELECT * FROM documents WHERE id = %s", (doc_id,))
            row = cur.fetchone()
            names = [c.name for c in cur.description]
    else:
        with contextlib.closing(sqlite3.connect(database_url)) as db:
            cur = db.execute("SELECT * FROM documents WHERE id = ?", (doc_id,))
            row = cur.fetchone()
            names = [c[0] for c in cur.description]
    return dict(zip(names, row, strict=True)) if row else None


def _space(database_url: str, collection: str) -> str:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT space FROM collections WHERE name = %s", (collection,)).fetchone()[0]


def _points(standin: str, space: str, collection: str, doc_id: str | None = None) -> int:
    async def count() -> int:
        store = QdrantServerStore.from_url(standin)
        try:
            return await store.count(space, collection, doc_id)
        finally:
            await store.close()

    return asyncio.run(count())


def _metric(proc: Proc, name: str, labels: str = "") -> float:
    text = httpx.get(f"{proc.url}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _upload(api: Proc, name: str, data: bytes, collection: str = "default") -> str:
    with api.client() as c:
        r = c.post("/api/documents", data={"collection": collection}, files=[("files", (name, data, "text/plain"))])
        assert r.status_code == 202, r.text
        return r.json()["documents"][0]["id"]


def _wait_row(database_url: str, doc_id: str, test, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        row = _row(database_url, doc_id)
        if test(row):
            return row
        time.sleep(0.05)
    raise AssertionError(f"row of {doc_id} never got there: {row}")


def test_a_worker_killed_mid_job_is_resumed_by_another_and_every_chunk_is_stored_once(
    tmp_path: Path, ml_api: Proc, shared_env: dict[str, str], database_url: str, standin: str
) -> None:
    api = start_backend(tmp_path, ml_api.url, "api", INGEST_WORKERS="0", **shared_env)
    workers = [start_worker(tmp_path, ml_api.url, f"worker-{i}", shared_env) for i in range(3)]
    try:
        doc_id = _upload(api, "long.txt", _long_text(400))
        # Wait until the job is well under way: some batches stored, many to go.
        row = _wait_row(database_url, doc_id, lambda r: r and r["status"] == "embedding" and r["chunks_done"] >= 40)
        assert row["chunks_done"] < row["chunks"] - 40, "the job ran too fast to be killed mid-way"
        owner_pid = int(row["lease_owner"].split(":")[1])
        (victim,) = [w for w in workers if w.service.proc.pid == owner_pid]
        os.kill(owner_pid, signal.SIGKILL)
        killed_at = row["chunks_done"]
        survivors = [w for w in workers if w is not victim]

        with api.client() as c:
            done = wait_ready(c, doc_id, timeout=180)
        assert done["status"] == "ready", done
        final = _row(database_url, doc_id)
        assert final["attempts"] == 2 and final["lease_owner"] is None  # one takeover, then published
        assert final["lease_owner"] is None and final["chunks_done"] == final["chunks"]

        # Resumed from its last finished batch: the new holder embedded only what lay past the stored prefix.
        resumed = sum(_metric(w, "rag_ingest_chunks_resumed_total") for w in survivors)
        assert killed_at <= resumed < final["chunks"]
        logs = "".join(w.output() for w in survivors)
        assert f'"document_id":"{doc_id}"' in logs and '"msg":"resumed"' in logs
        # Completed once: one `ready` among the survivors (the victim died before it could publish).
        assert sum(_metric(w, "rag_ingest_jobs_finished_total", '{status="ready"}') for w in survivors) == 1

        # Each chunk stored once: ids derive from (document, position), so the collection holds exactly `chunks`.
        space = _space(database_url, "default")
        assert _points(standin, space, "default", doc_id) == final["chunks"]
        assert _points(standin, space, "default") == final["chunks"]
        with api.client() as c:
            hits = c.post("/api/query", json={"query": "Section 399 caldera", "top_k": 3}).json()
        assert hits["results"] and all(h["document_id"] == doc_id for h in hits["results"])
    finally:
        for proc in [api, *workers]:
            proc.service.stop(20)


def test_two_api_processes_serve_one_catalog_and_a_deletion_reaches_the_worker(
    tmp_path: Path, ml_api: Proc, shared_env: dict[str, str], database_url: str, standin: str
) -> None:
    a = start_backend(tmp_path, ml_api.url, "api-a", INGEST_WORKERS="0", **shared_env)
    b = start_backend(tmp_path, ml_api.url, "api-b", INGEST_WORKERS="0", **shared_env)
    worker = start_worker(tmp_path, ml_api.url, "worker", shared_env, concurrency=2)
    try:
        small = _upload(a, "small.txt", _long_text(3, seed=1), collection="shared")
        with b.client() as c:
            assert wait_ready(c, small)["status"] == "ready"  # uploaded through A, finished and seen through B
            listed = c.get("/api/documents", params={"collection": "shared"}).json()["documents"]
            assert [d["id"] for d in listed] == [small]
            hits = c.post("/api/query", json={"query": "Section 2", "collection": "shared"}).json()["results"]
            assert hits and hits[0]["document_id"] == small
            # The worker parsed it; API B serves its text and original from the shared catalog.
            text = c.get(f"/api/documents/{small}/text").text
            assert all(text[h["char_start"] : h["char_end"]] == h["text"] for h in hits)
            assert c.get(f"/api/documents/{small}/content").content == _long_text(3, seed=1)
            assert c.get("/ready").json()["components"]["catalog"]["kind"] == "postgres"

        # A deletion through B while the worker embeds a long document: the worker notices at its next batch,
        # stops, and removes what it wrote; A sees the document gone.
        long = _upload(a, "long.txt", _long_text(800, seed=2), collection="shared")  # still embedding when deleted
        _wait_row(database_url, long, lambda r: r and r["status"] == "embedding" and r["chunks_done"] >= 8)
        with b.client() as c:
            assert c.delete(f"/api/documents/{long}").status_code == 200
        with a.client() as c:
            assert c.get(f"/api/documents/{long}").status_code == 404  # hidden at once
        _wait_row(database_url, long, lambda r: r is None, timeout=30)  # the worker purged its row and upload
        space = _space(database_url, "shared")
        assert _points(standin, space, "shared", long) == 0
        with psycopg.connect(database_url) as conn:  # what is kept of a document is the ready one's alone
            for table in ("uploads", "texts"):
                assert conn.execute(f"SELECT array_agg(document_id) FROM {table}").fetchone()[0] == [small]
        assert _points(standin, space, "shared") == _row(database_url, small)["chunks"]

        # The whole collection deleted through A while the worker embeds another long document of it: 202 at once,
        # gone from B's listing; the worker's job lets go of its row, then the worker claims the collection's job.
        other = _upload(a, "other.txt", _long_text(800, seed=3), collection="shared")
        _wait_row(database_url, other, lambda r: r and r["status"] == "embedding" and r["chunks_done"] >= 8)
        with a.client() as c:
            assert c.delete("/api/collections/shared").status_code == 202
        with b.client() as c:
            assert "shared" not in {x["name"] for x in c.get("/api/collections").json()}
            assert c.post("/api/query", json={"query": "Section 2", "collection": "shared"}).status_code == 404

        def collection_gone() -> bool:
            with psycopg.connect(database_url) as conn:
                return conn.execute("SELECT count(*) FROM collections WHERE name = 'shared'").fetchone()[0] == 0

        wait_for(collection_gone, 30, what="the worker to finish the collection's deletion")
        assert _points(standin, space, "shared") == 0 and _row(database_url, small) is None
        with psycopg.connect(database_url) as conn:
            assert conn.execute("SELECT count(*) FROM uploads").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM texts").fetchone()[0] == 0
        assert _metric(worker, "rag_ingest_claims_total", '{kind="collection"}') >= 1
        health = httpx.get(f"{worker.url}/ready", timeout=10)
        assert health.status_code == 200 and health.json()["components"]["leases"]["ok"], health.text
    finally:
        for proc in (a, b, worker):
            proc.service.stop(20)


@pytest.mark.parametrize("catalog", ["postgres", "sqlite"])
def test_a_worker_stopped_gracefully_hands_its_job_over_at_once(
    tmp_path: Path, ml_api: Proc, shared_env: dict[str, str], catalog: str
) -> None:
    """SIGTERM (a rolling update, a scale-down) ends the worker's leases as it stops: another worker resumes the job
    within a poll, long before the lease would have run out. Also on SQLite: processes of one machine sharing
    DATA_DIR (catalog and uploads) claim from it the same way, serialised by its single writer."""
    env = shared_env | {"INGEST_LEASE_S": "120"}
    if catalog == "sqlite":
        env |= {"DATABASE_URL": "", "DATA_DIR": str(tmp_path / "shared-data")}
        database_url = str(tmp_path / "shared-data" / "catalog.sqlite3")
    else:
        database_url = env["DATABASE_URL"]
    api = start_backend(tmp_path, ml_api.url, "api", INGEST_WORKERS="0", **env)
    workers = [start_worker(tmp_path, ml_api.url, f"worker-{i}", env) for i in range(2)]
    try:
        doc_id = _upload(api, "long.txt", _long_text(800, seed=3))  # long: still embedding when its holder stops
        row = _wait_row(database_url, doc_id, lambda r: r and r["status"] == "embedding" and r["chunks_done"] >= 8)
        (holder,) = [w for w in workers if w.service.proc.pid == int(row["lease_owner"].split(":")[1])]
        (other,) = [w for w in workers if w is not holder]
        stopped_at = time.monotonic()
        assert holder.service.stop(30) in (0, -signal.SIGTERM)
        assert '"msg":"worker stopped"' in holder.output()  # drained and exited cleanly
        taken = _wait_row(database_url, doc_id, lambda r: r["lease_owner"] and r["attempts"] == 2, timeout=60)
        assert int(taken["lease_owner"].split(":")[1]) == other.service.proc.pid
        assert time.monotonic() - stopped_at < 30  # not the 120 s lease
        with api.client() as c:
            assert wait_ready(c, doc_id, timeout=300)["status"] == "ready"
        assert _metric(other, "rag_ingest_chunks_resumed_total") > 0
    finally:
        for proc in (api, *workers):
            proc.service.stop(20)


def test_a_one_machine_stack_moves_to_postgresql_with_its_documents(
    tmp_path: Path, ml_api: Proc, shared_env: dict[str, str], database_url: str, standin: str
) -> None:
    """The upgrade of a compose stack from before PostgreSQL: its API ran on SQLite in DATA_DIR against the Qdrant
    server that stays. `import-catalog` copies the rows and the upload in flight; the new stack then lists and finds
    the finished document from its points as they are, and resumes the interrupted job where the old one stopped."""
    old_env = {k: v for k, v in shared_env.items() if k != "DATABASE_URL"}
    old = start_backend(tmp_path, ml_api.url, "old", **old_env)
    try:
        small = _upload(old, "small.txt", b"Field notes: zeolite crystals line the fumarole vents of the caldera.")
        with old.client() as c:
            assert wait_ready(c, small)["status"] == "ready"
        long = _upload(old, "long.txt", _long_text(400, seed=6))
        sqlite_path = str(tmp_path / "old-data" / "catalog.sqlite3")
        _wait_row(sqlite_path, long, lambda r: r and r["status"] == "embedding" and r["chunks_done"] >= 8)
    finally:
        assert old.stop()
    stored = _row(sqlite_path, long)
    assert 0 < stored["chunks_done"] < stored["chunks"]  # stopped mid-job, its upload still waiting

    env = backend_env(tmp_path / "old-data", ml_api.url, DATABASE_URL=database_url)
    cmd = [sys.executable, "-m", "rag_backend", "import-catalog"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "documents: 2 added, 0 already present; uploads: 2 copied, 0 missing; texts: 2 copied" in out.stdout

    new = start_backend(tmp_path, ml_api.url, "new", **shared_env)
    try:
        with new.client() as c:
            listed = {d["id"]: d["status"] for d in c.get("/api/documents").json()["documents"]}
            assert listed.keys() == {small, long}
            hits = c.post("/api/query", json={"query": "zeolite crystals", "top_k": 3}).json()["results"]
            assert hits and hits[0]["document_id"] == small  # its points, as the old stack stored them
            assert wait_ready(c, long, timeout=180)["status"] == "ready"
        final = _row(database_url, long)
        assert _metric(new, "rag_ingest_chunks_resumed_total") >= stored["chunks_done"]  # not embedded again
        space = _space(database_url, "default")
        assert _points(standin, space, "default", long) == final["chunks"]
        assert _points(standin, space, "default", small) == _row(database_url, small)["chunks"]
        with psycopg.connect(database_url) as conn:  # originals and texts kept, served by any replica
            assert conn.execute("SELECT count(*) FROM uploads").fetchone()[0] == 2
            assert conn.execute("SELECT count(*) FROM texts").fetchone()[0] == 2
    finally:
        new.service.stop(20)


@pytest.mark.parametrize(
    ("command", "env", "says"),
    [
        (["worker"], {}, "QDRANT_URL is not set"),
        (["serve"], {"INGEST_WORKERS": "0"}, "INGEST_WORKERS=0 leaves ingestion to `rag-backend worker`"),
        (["worker"], {"QDRANT_URL": "http://127.0.0.1:1", "DATABASE_URL": "mysql://x/y"}, "must be a PostgreSQL URL"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_start(
    tmp_path: Path, command: list[str], env: dict[str, str], says: str
) -> None:
    full = backend_env(tmp_path, "http://127.0.0.1:1", **env)
    out = subprocess.run(
        [sys.executable, "-m", "rag_backend", *command], env=full, capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0 and says in out.stdout + out.stderr


def test_a_catalog_outage_mid_job_pauses_ingestion_and_it_resumes(
    tmp_path: Path, ml_api: Proc, shared_env: dict[str, str], database_url: str, postgres_admin: str, standin: str
) -> None:
    """PostgreSQL refuses every connection for longer than the lease while a worker embeds: the API answers 503
    `catalog unavailable` (not 500), the worker gives its job up before anyone could take it over, and once the
    database is back the job is claimed again, resumes from its stored prefix and ends ready with each chunk once."""
    api = start_backend(tmp_path, ml_api.url, "api", INGEST_WORKERS="0", **shared_env)
    worker = start_worker(tmp_path, ml_api.url, "worker", shared_env)
    name = database_url.rsplit("/", 1)[1]

    def connections(allowed: bool) -> None:
        with psycopg.connect(postgres_admin, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

    try:
        doc_id = _upload(api, "long.txt", _long_text(300, seed=4))
        _wait_row(database_url, doc_id, lambda r: r and r["status"] == "embedding" and r["chunks_done"] >= 8)
        connections(False)
        try:
            with api.client() as c:
                r = c.get(f"/api/documents/{doc_id}")
            assert r.status_code == 503 and "catalog unavailable" in r.text, r.text
            time.sleep(LEASE_S * 1.5)  # past the lease: the worker must have stopped the job by itself
            assert "catalog unreachable past the lease" in worker.output()
        finally:
            connections(True)
        with api.client() as c:
            assert wait_ready(c, doc_id, timeout=180)["status"] == "ready"
        final = _row(database_url, doc_id)
        assert final["attempts"] == 2 and _metric(worker, "rag_ingest_chunks_resumed_total") > 0
        assert _points(standin, _space(database_url, "default"), "default") == final["chunks"]
        assert httpx.get(f"{worker.url}/ready", timeout=10).status_code == 200
    finally:
        for proc in (api, worker):
            proc.service.stop(20)
