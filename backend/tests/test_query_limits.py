"""Bounded work per query, against real processes: an ml-api that takes at most 4 texts per request, backends on it.

- A rerank pool larger than ml-api's MAX_CLIENT_BATCH_SIZE is split into requests that fit (read from its /info)
  and the scores are merged back in the right order (each equals ml-api's own score for that passage).
- QUERY_TIMEOUT_S: a pool that takes longer answers 504 naming the stage, soon after the deadline, and ml-api
  receives no more requests after it (the rest of the pool is never sent, queued items are dropped).
- A read timeout of a rerank call is not re-sent: ml-api sees each request once.
- Ingestion's embedding batches (EMBED_BATCH_SIZE=64) are split the same way: the documents index on this ml-api.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Proc, free_port, start_backend, start_ml_api, wait_ready

from rag_backend.errors import UpstreamUnavailable
from rag_backend.reranking import FALLBACK, PARALLEL, Limits, Reranker, limits_from_info, split
from rag_backend.upstream import Upstream

CLIENT_BATCH = 4
WORDS = (
    "basalt granite lava magma crust mantle plate quartz feldspar mica sediment erosion volcano tectonic mineral "
    "crystal rock stone layer fault obsidian pumice shale slate marble gneiss schist dike sill caldera"
).split()


def document(sections: int, words: int, seed: int) -> bytes:
    """Paragraphs of geology words: every chunk matches a query on them, so BM25 alone fills any pool."""
    r = random.Random(seed)
    paras = [f"Section {i}. " + " ".join(r.choice(WORDS) for _ in range(words)) + "." for i in range(sections)]
    return "\n\n".join(paras).encode()


@pytest.fixture(scope="module")
def small_ml_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    log = tmp_path_factory.mktemp("small-ml-api") / "ml-api.log"
    proc = start_ml_api(log, free_port(), MAX_CLIENT_BATCH_SIZE=str(CLIENT_BATCH))
    yield proc
    proc.stop()


def ingest(backend: Proc, name: str, body: bytes, min_chunks: int) -> None:
    with backend.client() as c:
        doc = c.post("/api/documents", files=[("files", (name, body, "text/plain"))]).json()["documents"][0]
        done = wait_ready(c, doc["id"], timeout=300)
    assert done["status"] == "ready", done
    assert done["chunks"] >= min_chunks, done


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, small_ml_api: Proc) -> Path:
    """Short chunks ("short-data") and long ones ("long-data"), each indexed once by a backend that then stops;
    each test starts its own backend on a copy-free reuse of those data directories with the settings it tests."""
    tmp = tmp_path_factory.mktemp("query-limits")
    # Ingestion keeps its default EMBED_BATCH_SIZE (64): the embedder splits its batches to fit ml-api's 4.
    short = start_backend(tmp, small_ml_api.url, "short", CHUNK_TOKENS="32", CHUNK_OVERLAP_TOKENS="4")
    try:
        ingest(short, "short.txt", document(40, 40, seed=1), min_chunks=40)
    finally:
        short.stop()
    long = start_backend(tmp, small_ml_api.url, "long")
    try:
        ingest(long, "long.txt", document(48, 180, seed=2), min_chunks=40)
    finally:
        long.stop()
    return tmp


def rerank_requests(ml_api: Proc) -> int:
    """/rerank requests ml-api has received: those answered (any status) plus those admitted and not yet answered
    (the only requests in flight in these tests are reranks)."""
    text = httpx.get(f"{ml_api.url}/metrics").text
    done = sum(float(v) for v in re.findall(r'^mlapi_requests_total\{route="/rerank",[^}]*\} (\S+)$', text, re.M))
    in_flight = re.search(r"^mlapi_in_flight_requests (\S+)$", text, re.M)
    return int(done + (float(in_flight.group(1)) if in_flight else 0))


def rerank_items(ml_api: Proc) -> int:
    """Passages ml-api has actually scored (items of its rerank forward passes)."""
    text = httpx.get(f"{ml_api.url}/metrics").text
    found = re.search(r'^mlapi_batch_size_sum\{model="rerank"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def settle(ml_api: Proc, timeout: float = 60) -> None:
    """Until ml-api has nothing queued or in flight: what it still computes after a query gave up is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = httpx.get(f"{ml_api.url}/info").json()["queue"]
        if queue["rerank"] == 0 and queue["in_flight"] == 0:
            return
        time.sleep(0.2)
    raise AssertionError("ml-api still busy")


def test_a_pool_larger_than_the_client_batch_limit_is_split_and_merged(
    tmp_path: Path, data: Path, small_ml_api: Proc
) -> None:
    over = httpx.post(f"{small_ml_api.url}/rerank", json={"query": "q", "texts": ["a"] * (CLIENT_BATCH + 1)})
    assert over.status_code == 413  # the limit is real: one request with the pool would be refused
    backend = start_backend(data, small_ml_api.url, "short", CHUNK_TOKENS="32", CHUNK_OVERLAP_TOKENS="4")
    try:
        before = rerank_requests(small_ml_api)
        query = {"query": "basalt magma crust", "candidates": 30, "top_k": 30, "dense": False}
        with backend.client() as c:
            r = c.post("/api/query", json=query)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert len(results) == 30
        assert rerank_requests(small_ml_api) - before == 30 // CLIENT_BATCH + 1  # 8 requests of at most 4
        scores = [x["rerank_score"] for x in results]
        assert scores == sorted(scores, reverse=True)
        # Each merged score is ml-api's own for that passage: no slice was attributed to the wrong texts.
        texts = [x["text"] for x in results]
        for i in range(0, len(texts), CLIENT_BATCH):
            part = texts[i : i + CLIENT_BATCH]
            reply = httpx.post(f"{small_ml_api.url}/rerank", json={"query": query["query"], "texts": part}).json()
            for item in reply:
                assert item["score"] == pytest.approx(scores[i + item["index"]], abs=1e-5)
    finally:
        backend.stop()


def test_a_query_past_its_deadline_answers_504_and_queues_no_more_work(data: Path, small_ml_api: Proc) -> None:
    # A deadline far shorter than scoring the pool takes on any CPU (each request of 4 long passages alone is
    # tens of ms on a fast machine, a second on a busy one).
    backend = start_backend(data, small_ml_api.url, "long", QUERY_TIMEOUT_S="0.25")
    try:
        query = {"query": "granite lava", "candidates": 60, "dense": False}
        with backend.client() as c:
            c.get("/ready")  # reads ml-api's limits, so the deadline is spent on the rerank itself
            pool = len(c.post("/api/query", json=query | {"rerank": False, "top_k": 60}).json()["results"])
            assert pool >= 40
            settle(small_ml_api)
            requests_before, items_before = rerank_requests(small_ml_api), rerank_items(small_ml_api)
            t0 = time.monotonic()
            r = c.post("/api/query", json=query)
            elapsed = time.monotonic() - t0
        assert r.status_code == 504, r.text
        body = r.json()
        assert body["error_type"] == "timeout" and "retry-after" not in r.headers
        assert "QUERY_TIMEOUT_S=0.25s" in body["error"] and f"reranking {pool} candidates" in body["error"]
        assert elapsed < 0.25 + 2.0, elapsed
        sent = rerank_requests(small_ml_api) - requests_before
        time.sleep(1.0)
        settle(small_ml_api)
        # Nothing was sent after the deadline, and ml-api scored less than the pool: the rest was never queued,
        # and the items of cancelled requests that had not started were dropped.
        scored = rerank_items(small_ml_api) - items_before
        slices = -(-pool // CLIENT_BATCH)
        print(f"[figures] 504 after {elapsed:.2f}s; ml-api got {sent}/{slices} requests, scored {scored}/{pool}")
        assert rerank_requests(small_ml_api) - requests_before == sent < slices
        assert scored < pool
    finally:
        backend.stop()


def test_a_rerank_read_timeout_is_not_resent(data: Path, small_ml_api: Proc) -> None:
    backend = start_backend(data, small_ml_api.url, "long", ML_API_TIMEOUT_S="0.02", ML_API_RETRIES="2")
    try:
        settle(small_ml_api)
        before = rerank_requests(small_ml_api)
        with backend.client() as c:
            r = c.post("/api/query", json={"query": "quartz mica", "candidates": 40, "dense": False})
        assert r.status_code == 503, r.text
        assert "did not answer within the read timeout" in r.json()["error"]
        time.sleep(1.0)
        settle(small_ml_api)
        # Re-sending would have sent each timed-out request of the first wave up to 3 times.
        print(f"[figures] read timeouts: ml-api got {rerank_requests(small_ml_api) - before} rerank requests")
        assert rerank_requests(small_ml_api) - before <= PARALLEL
    finally:
        backend.stop()


# -- the splitting and the limits on their own ---------------------------------------------------------------


def test_split_respects_count_and_bytes() -> None:
    texts = [f"passage {i} " + "x" * 100 for i in range(10)]
    assert split("q", texts, Limits(4, 1 << 20, "test")) == [(0, 4), (4, 8), (8, 10)]
    one = len(texts[0]) + 3
    slices = split("q", texts, Limits(100, 64 + 3 + 3 * one, "test"))  # three texts per body
    assert slices == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert split("q", ["y" * 5000, "z"], Limits(8, 1024, "test")) == [(0, 1), (1, 2)]  # a big one goes alone
    assert split("q", [], FALLBACK) == []


def test_limits_from_ml_api_and_tei_info_shapes() -> None:
    ml = {"batching": {"max_client_batch_size": 8, "max_request_bytes": 2_000_000}}
    assert limits_from_info(ml) == Limits(8, 2_000_000, "/info")
    assert limits_from_info({"model_id": "bge", "max_client_batch_size": 32}) == Limits(32, FALLBACK.max_bytes, "/info")
    for junk in (None, [], {}, {"batching": {"max_client_batch_size": 0}}, {"max_client_batch_size": "8"}):
        assert limits_from_info(junk) is None


@pytest.mark.anyio
async def test_unreadable_info_falls_back_and_is_asked_again_later() -> None:
    upstream = Upstream(timeout_s=1.0, retries=0)
    reranker = Reranker(upstream, f"http://127.0.0.1:{free_port()}", None)  # nothing listens there
    try:
        assert await reranker.limits() == FALLBACK
        assert reranker._limits is None and reranker._retry_at > time.monotonic()  # not cached as the truth
        with pytest.raises(UpstreamUnavailable):
            await reranker.scores("q", ["a", "b"])
    finally:
        await upstream.close()
