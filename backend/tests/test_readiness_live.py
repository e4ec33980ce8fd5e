"""/ready against real processes: it proves each dependency works the way queries use it, and tells only key
holders where things are.

An ml-api started with API_KEY: a backend holding the wrong key is 503 naming the refusal (and its queries fail
too), the right key is 200 after a real embedding, rerank, store search and Redis write+read. A refused
connection and a missing endpoint are 503 with the reason; with the backend's own API_KEY set, a caller without
it sees no URL, path, key or password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Proc, free_port, start_backend, start_ml_api, wait_ready
from devharness import wait_for

ML_KEY = "ml-key-7f3a9c0d"
WRONG_KEY = "not-the-ml-key-41b2e8"
BACKEND_KEY = "backend-key-93de51aa"
REDIS_PASSWORD = "redis-pass-5c1f77"


@pytest.fixture(scope="module")
def keyed_ml_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_ml_api(tmp_path_factory.mktemp("keyed-ml-api") / "ml-api.log", free_port(), API_KEY=ML_KEY)
    yield proc
    proc.stop()


def test_right_key_is_ready_after_real_calls_and_a_wrong_key_is_503_like_the_queries(
    tmp_path: Path, keyed_ml_api: Proc, redis_url: str, prefix: str
) -> None:
    backend = start_backend(tmp_path, keyed_ml_api.url, ML_API_KEY=ML_KEY, REDIS_URL=redis_url, CACHE_PREFIX=prefix)
    try:
        with backend.client() as c:
            r = c.get("/ready")
            assert r.status_code == 200 and r.json()["status"] == "ready", r.text
            parts = r.json()["components"]
            assert "all-MiniLM-L6-v2, 384 dims" in parts["embeddings"]["detail"]
            assert "texts per request, from /info" in parts["reranker"]["detail"]
            # No API_KEY here: nobody is authenticated, so nobody sees where the data or the services live.
            assert str(tmp_path) not in r.text and keyed_ml_api.url not in r.text and "<url>" in r.text
            assert "no indexed collection" in parts["store"]["detail"]
            assert parts["cache"]["kind"] == "redis" and parts["cache"]["ok"]
            doc = c.post("/api/documents", files=[("files", ("a.txt", b"Basalt is a volcanic rock.", "text/plain"))])
            assert wait_ready(c, doc.json()["documents"][0]["id"])["status"] == "ready"
            r = c.get("/ready")
            assert r.status_code == 200 and "searched collection 'default'" in r.json()["components"]["store"]["detail"]
            assert c.post("/api/query", json={"query": "volcanic rock"}).json()["results"]
    finally:
        backend.stop()

    # The same data, but the backend now holds a key ml-api refuses: /ready says so, as the queries do.
    backend = start_backend(tmp_path, keyed_ml_api.url, ML_API_KEY=WRONG_KEY)
    try:
        with backend.client() as c:
            r = c.get("/ready")
            query = c.post("/api/query", json={"query": "volcanic rock"})
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        parts = r.json()["components"]
        for name in ("embeddings", "reranker"):
            assert not parts[name]["ok"]
            assert "(401)" in parts[name]["detail"] and "API key" in parts[name]["detail"], parts[name]
        assert parts["store"]["ok"] and "searched collection 'default'" in parts["store"]["detail"]
        assert query.status_code == 502 and "(401)" in query.json()["error"]
    finally:
        backend.stop()


def test_refused_connection_and_missing_endpoint_are_503_with_the_reason(tmp_path: Path, keyed_ml_api: Proc) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    backend = start_backend(
        tmp_path, dead, "dead", RERANK_API_URL=f"{keyed_ml_api.url}/no-such-model", ML_API_KEY=ML_KEY
    )
    try:
        with backend.client() as c:
            t0 = time.monotonic()
            r = c.get("/ready")
            elapsed = time.monotonic() - t0
        assert r.status_code == 503 and elapsed < 10 + 2
        parts = r.json()["components"]
        assert not parts["embeddings"]["ok"] and "ConnectError" in parts["embeddings"]["detail"]
        assert not parts["reranker"]["ok"] and "(404)" in parts["reranker"]["detail"], parts["reranker"]
    finally:
        backend.stop()


def test_callers_without_the_key_see_no_paths_urls_or_secrets(
    tmp_path: Path, keyed_ml_api: Proc, redis_url: str
) -> None:
    where = urlsplit(redis_url)
    redis_with_password = f"redis://:{REDIS_PASSWORD}@{where.netloc}{where.path}"  # a password in a URL
    backend = start_backend(
        tmp_path, keyed_ml_api.url, ML_API_KEY=WRONG_KEY, API_KEY=BACKEND_KEY, REDIS_URL=redis_with_password
    )
    try:
        with backend.client() as c:
            anonymous = c.get("/ready")
            holder = c.get("/ready", headers={"X-API-Key": BACKEND_KEY})
        assert anonymous.status_code == holder.status_code == 503
        for r in (anonymous, holder):
            for secret in (ML_KEY, WRONG_KEY, BACKEND_KEY, REDIS_PASSWORD):
                assert secret not in r.text
        assert {n: (p["ok"], p["kind"]) for n, p in anonymous.json()["components"].items()} == {
            n: (p["ok"], p["kind"]) for n, p in holder.json()["components"].items()
        }
        for place in (str(tmp_path), "127.0.0.1", "://", where.netloc):
            assert place not in anonymous.text, place
        assert "(401)" in anonymous.json()["components"]["embeddings"]["detail"]  # the reason stays readable
        assert "<path>" in anonymous.json()["components"]["store"]["detail"]
        # A key holder sees where things are.
        assert str(tmp_path) in holder.json()["components"]["store"]["detail"]
        assert keyed_ml_api.url in holder.json()["components"]["reranker"]["detail"] or "127.0.0.1" in holder.text
    finally:
        backend.stop()


HEAVY = ["an extended discussion of climate feedback loops and ocean heat uptake " * 10] * 256


def _embed_calls(ml: Proc) -> float:
    """ml-api's count of /v1/embeddings requests, whatever their status."""
    lines = httpx.get(ml.url + "/metrics", timeout=5).text.splitlines()
    return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith('mlapi_requests_total{route="/v1/embeddings"'))


def test_a_saturated_ml_api_is_busy_not_down_and_a_proof_stands_briefly(tmp_path: Path) -> None:
    """ml-api full (429): every replica stays ready instead of leaving the Service at once; a probe's result
    stands ten seconds, so probes do not each send ml-api a forward pass."""
    ml = start_ml_api(tmp_path / "busy-ml-api.log", free_port(), MAX_CONCURRENT_REQUESTS="2")
    backend = start_backend(tmp_path, ml.url)
    try:
        with ThreadPoolExecutor(2) as pool, backend.client() as c:
            heavy = [pool.submit(httpx.post, ml.url + "/embed", json={"inputs": HEAVY}, timeout=300) for _ in range(2)]
            wait_for(lambda: httpx.get(ml.url + "/info").json()["queue"]["in_flight"] >= 2, 60, what="ml-api full")
            t0 = time.monotonic()
            r = c.get("/ready")
            took = time.monotonic() - t0
            assert r.status_code == 200 and r.json()["status"] == "ready", r.text
            parts = r.json()["components"]
            assert parts["embeddings"]["detail"].startswith("busy (counted as up)"), parts
            assert parts["reranker"]["detail"].startswith("busy (counted as up)"), parts
            assert took < 5, f"/ready waited {took:.1f}s on a full ml-api (429s are not retried in probes)"
            time.sleep(0.2)  # ml-api counts a request just after answering it
            calls = _embed_calls(ml)
            assert c.get("/ready").status_code == 200
            time.sleep(0.2)
            assert _embed_calls(ml) == calls  # the result stands: this probe sent ml-api nothing
            assert all(h.result().status_code == 200 for h in heavy)
    finally:
        backend.stop()
        ml.stop()
