"""Durable ingestion through dependency outages, with real processes: ml-api SIGKILLed and restarted mid-ingestion,
the embedded store locked by another process, the retry deadline, the retry endpoint and replacing a failed row.

Each test runs its own backend (and, where it kills it, its own ml-api) so the session's services stay untouched.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import Proc, free_port, start_backend, start_ml_api, wait_ready
from devharness import wait_for
from docs import long_text, pdf_bytes

from rag_backend.store import EdgeStore

TOPICS = [
    "apoptosis", "autophagy", "cytokine", "dendritic", "enzyme", "fibroblast", "glycolysis", "histone",
    "insulin", "kinase", "lymphocyte", "macrophage", "neuron", "oncogene", "plasmid", "receptor",
]  # fmt: skip


def abstract(i: int) -> bytes:
    """A SciFact-sized abstract (a few chunks) with its own vocabulary."""
    topic = f"{TOPICS[i % len(TOPICS)]}{i}"
    return long_text(topic, 24).encode()


def upload(c: httpx.Client, files: list[tuple[str, bytes]], collection: str = "default") -> list[dict]:
    r = c.post(
        "/api/documents", files=[("files", (n, d, "text/plain")) for n, d in files], data={"collection": collection}
    )
    assert r.status_code == 202, r.text
    return r.json()["documents"]


def statuses(c: httpx.Client, collection: str = "default") -> list[dict]:
    return c.get("/api/documents", params={"collection": collection, "limit": 1000}).json()["documents"]


def progress(docs: list[dict]) -> int:
    """Chunks embedded so far, over all documents."""
    return sum(d["chunks"] if d["status"] == "ready" else d["chunks_done"] for d in docs)


def store_counts(data_dir: Path) -> dict[str, int]:
    """Points per document, read from the backend's store on disk once the backend has stopped."""
    db = sqlite3.connect(data_dir / "catalog.sqlite3")
    rows = db.execute("SELECT d.id, d.collection, c.space FROM documents d JOIN collections c ON c.name = d.collection")
    docs = rows.fetchall()
    db.close()

    async def count() -> dict[str, int]:
        store = EdgeStore(data_dir / "qdrant")
        try:
            return {doc_id: await store.count(space, coll, doc_id) for doc_id, coll, space in docs}
        finally:
            await store.close()

    return asyncio.run(count())


def hold_store(space: Path) -> subprocess.Popen[bytes]:
    """Another process opens the embedded store's shard (as a second backend on the same DATA_DIR would): the
    backend's store calls fail until it is killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import qdrant_edge as qe, sys, time\nshard = qe.EdgeShard.load({str(space)!r}, None)\n"
         "print('held', flush=True)\ntime.sleep(600)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    return holder


def test_ml_api_sigkill_mid_ingestion_loses_no_document(tmp_path: Path) -> None:
    """40 abstracts are being embedded when ml-api is SIGKILLed; it comes back on the same port a few seconds later.

    Proves: no document fails, the waiting ones say why, all end ready with exactly their chunks in the store (no
    batch lost, none duplicated), and the time from ml-api healthy again to all ready (printed; bounded by
    INGEST_RETRY_MAX_S plus the remaining work). Small batches, one at a time, so the kill lands mid-ingestion."""
    port = free_port()
    ml = start_ml_api(tmp_path / "ml-1.log", port)
    backend = start_backend(
        tmp_path, ml.url, name="dur", EMBED_BATCH_SIZE="8", EMBED_CONCURRENCY="1", ML_API_RETRIES="1"
    )
    try:
        with backend.client() as c:
            docs = upload(c, [(f"abstract-{i:02d}.txt", abstract(i)) for i in range(40)])
            ids = {d["id"] for d in docs}
            assert len(ids) == 40
            wait_for(lambda: sum(d["status"] == "ready" for d in statuses(c)) >= 3, 120, what="a few ready")
            ready_at_kill = sum(d["status"] == "ready" for d in statuses(c))
            assert ready_at_kill < 40, "ingestion finished before the kill: make the documents bigger"
            ml.service.send_signal(signal.SIGKILL)
            ml.service.proc.wait()
            killed = time.monotonic()
            waiting = wait_for(lambda: [d for d in statuses(c) if d["retry_reason"]], 30, what="a waiting document")
            assert "ml-api" in waiting[0]["retry_reason"] and waiting[0]["next_retry_at"]
            time.sleep(4)
            assert not [d for d in statuses(c) if d["status"] == "failed"]

            ml = start_ml_api(tmp_path / "ml-2.log", port)
            healthy = time.monotonic()
            outage_s = healthy - killed
            before = progress(statuses(c))
            wait_for(lambda: progress(statuses(c)) > before, 60, 0.1, "ingestion to resume")
            first_progress_s = time.monotonic() - healthy
            wait_for(lambda: all(d["status"] in ("ready", "failed") for d in statuses(c)), 300, 0.1, "all done")
            resumed_s = time.monotonic() - healthy
            final = statuses(c)
            assert [d["error"] for d in final if d["status"] != "ready"] == []
            assert all(d["retry_reason"] is None and d["waiting_since"] is None for d in final)
            chunks = {d["id"]: d["chunks"] for d in final}
            print(
                f"\nml-api restart: {ready_at_kill}/40 ready at the kill, ml-api away {outage_s:.1f} s; once healthy "
                f"again: first progress in {first_progress_s:.1f} s, all 40 ready in {resumed_s:.1f} s"
            )
    finally:
        assert backend.stop()
        ml.stop()
    counts = store_counts(tmp_path / "dur-data")
    assert {i: counts[i] for i in ids} == {i: chunks[i] for i in ids}


def test_store_locked_by_another_process_waits_then_resumes(tmp_path: Path, ml_api: Proc) -> None:
    """The embedded store's shard is held by another process (its WAL lock), so every store call of the backend
    fails with a real StoreError from the engine ("failed to open WAL ... WouldBlock") until that process exits.

    Proves: store failures are waited out with the reason shown, and the jobs resume by themselves when the store
    can be opened again, every chunk stored once. Does not prove the same against a Qdrant *server* (none can run
    here): there, qdrant-client's connection errors surface as the same StoreError, which is what is retried."""
    first = start_backend(tmp_path, ml_api.url, name="st")
    try:
        with first.client() as c:
            (seed,) = upload(c, [("seed.txt", abstract(100))])
            assert wait_ready(c, seed["id"])["status"] == "ready"
    finally:
        assert first.stop()
    (space,) = [p for p in (tmp_path / "st-data" / "qdrant").iterdir() if p.is_dir()]
    holder = hold_store(space)
    try:
        backend = start_backend(tmp_path, ml_api.url, name="st", INGEST_RETRY_MAX_S="2", INGEST_WORKERS="8")
        try:
            with backend.client() as c:
                docs = upload(c, [(f"locked-{i}.txt", abstract(200 + i)) for i in range(5)])
                waiting = wait_for(
                    lambda: (w := [d for d in statuses(c) if d["retry_reason"]]) and len(w) == 5 and w, 60
                )
                assert all(d["status"] == "chunking" and "WAL" in d["retry_reason"] for d in waiting), waiting
                time.sleep(3)
                assert not [d for d in statuses(c) if d["status"] in ("failed", "ready") and d["id"] != seed["id"]]
                holder.kill()
                holder.wait()
                released = time.monotonic()
                for d in docs:
                    assert wait_ready(c, d["id"], 60)["status"] == "ready"
                print(f"\nstore lock released: 5 documents ready {time.monotonic() - released:.1f} s later")
                final = {d["id"]: d["chunks"] for d in statuses(c)}
        finally:
            assert backend.stop()
    finally:
        holder.kill()
        holder.wait()
    assert store_counts(tmp_path / "st-data") == final


def test_deadline_fails_with_the_reason_then_retry_endpoint_and_reupload_replace(tmp_path: Path, ml_api: Proc) -> None:
    """With ml-api unreachable past INGEST_RETRY_DEADLINE_S the document ends failed with the last reason; its upload
    is kept, so after a restart with ml-api back `POST /retry` indexes it without a re-upload. Then a failed row is
    replaced by an upload of the same file name, and the collection's counts follow. A waiting document can be
    deleted (with its collection) at once: its job notices within a second instead of at the end of its wait."""
    dead = f"http://127.0.0.1:{free_port()}"
    backend = start_backend(tmp_path, dead, name="dl", INGEST_RETRY_DEADLINE_S="6", INGEST_RETRY_MAX_S="1")
    try:
        with backend.client() as c:
            (doc,) = upload(c, [("lichen.txt", b"Lichens are fungi living in symbiosis with algae.")])
            (fern,) = upload(c, [("fern.txt", b"Ferns reproduce with spores.")], "doomed")
            wait_for(lambda: c.get(f"/api/documents/{fern['id']}").json()["retry_reason"], 5, what="fern to wait")
            t0 = time.monotonic()
            assert c.delete("/api/collections/doomed").status_code == 202
            assert time.monotonic() - t0 < 3 and c.get(f"/api/documents/{fern['id']}").status_code == 404
            # The collection's job waits for the fern's job to let go of its row, then removes it.
            wait_for(lambda: c.post("/api/collections", json={"name": "doomed"}).status_code == 201, 20,
                     what="the deleted collection's job to finish")  # fmt: skip
            failed = wait_ready(c, doc["id"], 60)
            assert failed["status"] == "failed" and "gave up after" in failed["error"]
            assert "ml-api unavailable" in failed["error"] and failed["retry_reason"] is None
    finally:
        assert backend.stop()

    backend = start_backend(tmp_path, ml_api.url, name="dl")
    try:
        with backend.client() as c:
            assert c.post("/api/documents/nope/retry").status_code == 404
            r = c.post(f"/api/documents/{doc['id']}/retry")
            assert r.status_code == 202 and r.json()["status"] == "queued" and r.json()["error"] is None
            assert wait_ready(c, doc["id"])["status"] == "ready"
            r = c.post(f"/api/documents/{doc['id']}/retry")
            assert r.status_code == 409 and r.json()["error_type"] == "conflict" and "ready" in r.json()["error"]

            (broken,) = upload(c, [("paper.pdf", b"%PDF-1.4 this is not a pdf")], "papers")
            assert wait_ready(c, broken["id"])["status"] == "failed"
            r = c.post(f"/api/documents/{broken['id']}/retry")  # a permanent failure fails again, same reason
            assert r.status_code == 202 and wait_ready(c, broken["id"])["status"] == "failed"
            (coll,) = [x for x in c.get("/api/collections").json() if x["name"] == "papers"]
            assert (coll["documents"], coll["failed"], coll["ready"]) == (1, 1, 0)

            fixed = c.post(
                "/api/documents",
                files=[
                    ("files", ("paper.pdf", pdf_bytes(["Stomata regulate gas exchange in leaves."]), "application/pdf"))
                ],
                data={"collection": "papers"},
            ).json()["documents"][0]
            assert c.get(f"/api/documents/{broken['id']}").status_code == 404  # replaced at once
            assert wait_ready(c, fixed["id"])["status"] == "ready"
            (coll,) = [x for x in c.get("/api/collections").json() if x["name"] == "papers"]
            assert (coll["documents"], coll["failed"], coll["ready"]) == (1, 0, 1)
            assert not (tmp_path / "dl-data" / "uploads" / broken["id"]).exists()
    finally:
        assert backend.stop()


def test_a_collection_deletion_is_a_job_that_survives_a_restart(tmp_path: Path, ml_api: Proc) -> None:
    """DELETE answers 202 at once and hides the collection. Its job cannot drop the points while another process holds
    the embedded store (as in the test above): it is given back to the catalog, still queued when the backend stops.
    The next process claims it once the store is free: every point, row and upload of the collection is gone, the
    other collection untouched."""
    data = tmp_path / "cj-data"
    backend = start_backend(tmp_path, ml_api.url, name="cj")
    try:
        with backend.client() as c:
            doomed = upload(c, [(f"a{i}.txt", abstract(i)) for i in range(3)], "doomed")
            (kept,) = upload(c, [("kept.txt", abstract(7))], "kept")
            for doc in [*doomed, kept]:
                assert wait_ready(c, doc["id"])["status"] == "ready"
    finally:
        assert backend.stop()
    before = store_counts(data)
    assert all(before[d["id"]] > 0 for d in doomed)

    (space,) = [p for p in (data / "qdrant").iterdir() if p.is_dir()]
    holder = hold_store(space)
    try:
        backend = start_backend(tmp_path, ml_api.url, name="cj")
        try:
            with backend.client() as c:
                t0 = time.monotonic()
                r = c.delete("/api/collections/doomed")
                assert r.status_code == 202 and time.monotonic() - t0 < 2
                assert [x["name"] for x in c.get("/api/collections").json()] == ["kept"]
                r = c.post("/api/query", json={"query": "apoptosis0", "collection": "doomed", "rerank": False})
                assert r.status_code == 404
                assert c.get(f"/api/documents/{doomed[0]['id']}").status_code == 404
                wait_for(lambda: "could not drop the points of collection doomed" in backend.output(), 20,
                         what="the job to meet the held store")  # fmt: skip
        finally:
            assert backend.stop()
    finally:
        holder.kill()
        holder.wait()
    db = sqlite3.connect(data / "catalog.sqlite3")
    assert db.execute("SELECT deleting FROM collections WHERE name = 'doomed'").fetchall() == [(1,)]  # still queued
    db.close()

    backend = start_backend(tmp_path, ml_api.url, name="cj")
    try:
        with backend.client() as c:
            wait_for(lambda: c.post("/api/collections", json={"name": "doomed"}).status_code == 201, 30,
                     what="the deletion to be resumed")  # fmt: skip
    finally:
        assert backend.stop()
    assert store_counts(data) == {kept["id"]: before[kept["id"]]}
    assert {p.name for p in (data / "uploads").iterdir()} == {kept["id"]}  # the doomed ones' originals went too
    assert asyncio.run(_points_of(data, "doomed")) == 0


async def _points_of(data: Path, collection: str) -> int:
    db = sqlite3.connect(data / "catalog.sqlite3")
    (space,) = db.execute("SELECT space FROM collections WHERE name = 'kept'").fetchone()
    db.close()
    store = EdgeStore(data / "qdrant")
    try:
        return await store.count(space, collection)
    finally:
        await store.close()
