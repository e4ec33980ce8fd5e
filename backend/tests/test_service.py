"""Service behaviour around the pipeline: restarts, upstream and cache failures, auth, limits, providers.

Each test runs its own backend process(es) against the shared ml-api."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from conftest import Proc, free_port, start_backend, start_redis, wait_ready
from devharness import wait_for
from docs import SOLAR, long_text

DEAD_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there


def upload(c: httpx.Client, name: str, data: bytes, collection: str = "default") -> dict:
    r = c.post("/api/documents", files=[("files", (name, data, "text/plain"))], data={"collection": collection})
    assert r.status_code == 202, r.text
    return r.json()["documents"][0]


def test_restart_keeps_data_and_ml_api_outage_is_a_clear_503(tmp_path: Path, ml_api: Proc) -> None:
    first = start_backend(tmp_path, ml_api.url, name="b")
    try:
        with first.client() as c:
            doc = upload(c, "solar.md", SOLAR.encode())
            assert wait_ready(c, doc["id"])["status"] == "ready"
    finally:
        assert first.stop()
    # Same DATA_DIR, ml-api gone: the embedded store and the catalog come back from disk.
    second = start_backend(tmp_path, DEAD_URL, name="b")
    try:
        with second.client() as c:
            assert c.get(f"/api/documents/{doc['id']}").json()["status"] == "ready"
            ready = c.get("/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
            assert not ready.json()["components"]["embeddings"]["ok"]
            assert ready.json()["components"]["store"]["ok"]
            t0 = time.monotonic()
            r = c.post("/api/query", json={"query": "photovoltaic cells"})
            assert r.status_code == 503 and time.monotonic() - t0 < 10
            error = r.json()["error"]
            assert r.json()["error_type"] == "upstream_unavailable" and "<url>" in error and DEAD_URL not in error
            assert r.headers["retry-after"]
            # Lexical search needs no ml-api: still answers from the persisted shard.
            r = c.post("/api/query", json={"query": "photovoltaic cells", "dense": False, "rerank": False})
            assert r.status_code == 200 and r.json()["results"][0]["document_id"] == doc["id"]
            # An upload waits out the outage (INGEST_RETRY_DEADLINE_S) and says why, instead of failing.
            new_id = upload(c, "new.txt", b"Lichens are fungi living with algae.")["id"]
            waiting = wait_for(lambda: (d := c.get(f"/api/documents/{new_id}").json())["retry_reason"] and d, 30)
            assert waiting["status"] not in ("ready", "failed") and "ml-api unavailable" in waiting["retry_reason"]
            assert waiting["waiting_since"] and waiting["next_retry_at"]
    finally:
        second.stop()


def test_interrupted_job_resumes_after_restart(tmp_path: Path, ml_api: Proc) -> None:
    backend = start_backend(tmp_path, ml_api.url, name="r", EMBED_CONCURRENCY="1", EMBED_BATCH_SIZE="8")
    try:
        with backend.client() as c:
            doc = upload(c, "big.txt", long_text("basalt", 600).encode())
            deadline = time.monotonic() + 60
            while c.get(f"/api/documents/{doc['id']}").json()["status"] != "embedding":
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        assert backend.stop()
    backend = start_backend(tmp_path, ml_api.url, name="r")
    try:
        with backend.client() as c:
            done = wait_ready(c, doc["id"], timeout=300)
            assert done["status"] == "ready" and done["chunks_done"] == done["chunks"]
            body = c.post(
                "/api/query", json={"query": "basalt report", "dense": False, "rerank": False, "top_k": 100}
            ).json()
            positions = [r["position"] for r in body["results"]]
            assert len(positions) == len(set(positions)), "points of the interrupted run were left behind"
    finally:
        backend.stop()


def test_redis_outage_degrades_to_uncached(tmp_path: Path, ml_api: Proc) -> None:
    redis = start_redis(tmp_path)
    backend = start_backend(tmp_path, ml_api.url, REDIS_URL=redis.url, CACHE_PREFIX="outage:")
    try:
        with backend.client() as c:
            assert wait_ready(c, upload(c, "solar.md", SOLAR.encode())["id"])["status"] == "ready"
            q = {"query": "How do solar panels make electricity?"}
            assert c.post("/api/query", json=q).json()["cached"] is False
            assert c.post("/api/query", json=q).json()["cached"] is True
            redis.stop()
            r = c.post("/api/query", json=q)
            assert r.status_code == 200 and r.json()["cached"] is False and r.json()["results"]
            ready = c.get("/ready")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert not ready.json()["components"]["cache"]["ok"]
    finally:
        backend.stop()


def test_api_key_and_upload_limits(tmp_path: Path, ml_api: Proc) -> None:
    backend = start_backend(tmp_path, ml_api.url, API_KEY="k3y", MAX_UPLOAD_MB="0.01", MAX_REQUEST_MB="0.05")
    try:
        with backend.client() as c:
            assert c.get("/api/documents").status_code == 401
            assert c.get("/api/documents", headers={"authorization": "Bearer nope"}).status_code == 401
            assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200
            auth = {"authorization": "Bearer k3y"}
            assert c.get("/api/documents", headers=auth).status_code == 200
            assert c.get("/api/collections", headers={"x-api-key": "k3y"}).status_code == 200
            big = b"word " * 4000  # 20 kB > 10 kB
            r = c.post("/api/documents", files=[("files", ("big.txt", big, "text/plain"))], headers=auth)
            assert r.status_code == 413 and "limit" in r.json()["error"]
            huge = b"x" * 100_000
            r = c.post("/api/documents", files=[("files", ("huge.txt", huge, "text/plain"))], headers=auth)
            assert r.status_code == 413 and "MAX_REQUEST_MB" in r.json()["error"]

            def chunked() -> object:
                yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="s.txt"\r\n\r\n'
                for _ in range(100):
                    yield b"y" * 1000

            r = c.post(
                "/api/documents", content=chunked(),
                headers={**auth, "content-type": "multipart/form-data; boundary=b"},
            )  # fmt: skip
            assert r.status_code == 413 and "MAX_REQUEST_MB" in r.json()["error"]
    finally:
        backend.stop()


def test_openai_provider_and_model_mismatch(tmp_path: Path, ml_api: Proc) -> None:
    """EMBED_PROVIDER=openai against ml-api's own OpenAI-compatible /v1/embeddings (real HTTP, real model)."""
    openai = {
        "EMBED_PROVIDER": "openai",
        "OPENAI_EMBED_BASE_URL": f"{ml_api.url}/v1",
        "OPENAI_EMBED_MODEL": "all-MiniLM-L6-v2",
        "OPENAI_EMBED_DIMENSIONS": "128",
    }
    backend = start_backend(tmp_path, ml_api.url, name="o", **openai)
    try:
        with backend.client() as c:
            doc = upload(c, "solar.md", SOLAR.encode())
            assert wait_ready(c, doc["id"])["status"] == "ready"
            r = c.post("/api/query", json={"query": "photovoltaic electricity"})
            assert r.status_code == 200 and r.json()["results"][0]["document_id"] == doc["id"]
            embed_model = c.get("/api/collections").json()[0]["embed_model"]
            assert embed_model == "openai:all-MiniLM-L6-v2:128"
    finally:
        backend.stop()
    backend = start_backend(tmp_path, ml_api.url, name="o")  # same data, ml-api's 384-dim embeddings
    try:
        with backend.client() as c:
            r = c.post("/api/query", json={"query": "photovoltaic electricity"})
            assert r.status_code == 409 and "openai:all-MiniLM-L6-v2:128" in r.json()["error"]
            failed = wait_ready(c, upload(c, "more.txt", b"Tidal power uses the moon.")["id"])
            assert failed["status"] == "failed" and "was indexed with" in failed["error"]
    finally:
        backend.stop()


@pytest.mark.parametrize("bad_url", [DEAD_URL])
def test_startup_without_ml_api_still_serves_health(tmp_path: Path, bad_url: str) -> None:
    backend = start_backend(tmp_path, bad_url)
    try:
        with backend.client() as c:
            assert c.get("/health").status_code == 200
            assert c.get("/api/collections").json() == []
    finally:
        backend.stop()
