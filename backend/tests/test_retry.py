"""The retry policy of ingestion (`ingestion/outages.py`, the pump's batch halving) against a real HTTP server.

The server is a small stdlib one speaking the OpenAI embeddings shape (what the backend sends ml-api), so the
failures are real HTTP ones (503 answers, read timeouts) seen through the real Upstream client and embedder; it
lets each test choose exactly when it fails, which a real ml-api cannot. The process-level outages (ml-api killed,
the store locked) are in test_durability.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from rag_backend.catalog import Catalog, DocumentStatus, open_catalog
from rag_backend.embedding import MlApiEmbedder
from rag_backend.ingestion.outages import GaveUp, Outage, Retrier
from rag_backend.ingestion.pump import EmbedPump
from rag_backend.upstream import Upstream

DIM = 4


@dataclass
class Behaviour:
    down_until: float = 0.0  # monotonic: answer 503 before this
    slow_above: int = 0  # more texts than this: answer after `slow_s` (the client times out first)
    slow_s: float = 0.0
    sizes: list[int] = field(default_factory=list)
    failed: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each 503 answered
    lock: threading.Lock = field(default_factory=threading.Lock)


def _server(b: Behaviour) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:
            texts = json.loads(self.rfile.read(int(self.headers["content-length"])))["input"]
            start = time.monotonic()
            with b.lock:
                b.sizes.append(len(texts))
            time.sleep(0.02)
            if start < b.down_until:
                with b.lock:
                    b.failed.append((start, time.monotonic()))
                self._send(503, {"error": "model loading"})
                return
            if b.slow_above and len(texts) > b.slow_above:
                time.sleep(b.slow_s)
            vec = base64.b64encode(np.ones(DIM, dtype="<f4").tobytes()).decode()
            self._send(200, {"data": [{"index": i, "embedding": vec} for i in range(len(texts))]})

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            with contextlib.suppress(OSError):  # the client may have timed out and gone
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

    class Server(ThreadingHTTPServer):
        request_queue_size = 64  # the default backlog of 5 delays simultaneous connects by a SYN retransmit (1 s)

    return Server(("127.0.0.1", 0), Handler)


@pytest.fixture
def served() -> Iterator[tuple[str, Behaviour]]:
    b = Behaviour()
    server = _server(b)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", b
    server.shutdown()
    server.server_close()


OWNER = "test:1:retry"


def _docs(tmp_path: Path, n: int) -> tuple[Catalog, list[str]]:
    """n jobs in their embedding stage, leased to OWNER (the Retrier checks that its process still holds them)."""
    catalog = open_catalog(None, tmp_path)
    catalog.create_collection("c")
    ids = []
    for i in range(n):
        doc = catalog.add_document("c", f"d{i}.txt", "text", 1, f"sha{i}", b"x")
        ids.append(doc["id"])
    assert {d["id"] for d in catalog.claim(OWNER, 60, n)} == set(ids)
    for doc_id in ids:
        catalog.set_stage(doc_id, DocumentStatus.EMBEDDING, OWNER)
    return catalog, ids


@pytest.mark.anyio
async def test_an_outage_gets_one_trial_at_a_time_and_everyone_resumes(
    served: tuple[str, Behaviour], tmp_path: Path
) -> None:
    """Ten jobs meet a 503 for 1.5 s: after the first wave, at most one request is in flight while it lasts, the
    trials back off, the rows say why they wait, and all ten finish once it answers again."""
    url, b = served
    b.down_until = time.monotonic() + 1.5
    catalog, ids = _docs(tmp_path, 10)
    upstream = Upstream(timeout_s=2, retries=0)
    embedder = MlApiEmbedder(upstream, url, None)
    outage, retrier = Outage("ml-api", 0.05, 0.4, metric="retry-test"), Retrier(catalog, 60, OWNER)
    seen_waiting: set[str] = set()
    down_seen: set[float | None] = set()

    def sample(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"dependency": "retry-test"})

    async def watch() -> None:
        while True:
            seen_waiting.update(d for d in ids if (catalog.get_document(d) or {}).get("retry_reason"))
            down_seen.add(sample("rag_ingest_dependency_down"))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        results = await asyncio.gather(*(retrier.call(d, outage, lambda: embedder.embed(["a", "b"])) for d in ids))
    finally:
        watcher.cancel()
        await upstream.close()
    assert all(r.shape == (2, DIM) for r in results)
    failed = sorted(b.failed)
    trials = failed[10:]  # the first wave is every job's first call; then only trials reach the server
    assert 2 <= len(trials) <= 12, failed  # backoff 0.05 s doubling to 0.4 s over a 1.5 s outage
    assert all(nxt[0] >= prev[1] for prev, nxt in itertools.pairwise(trials)), failed  # one trial at a time
    assert seen_waiting == set(ids)
    # Operators see it too: the dependency was reported down while it was, every failed call was counted.
    assert 1.0 in down_seen and sample("rag_ingest_dependency_down") == 0.0
    assert sample("rag_ingest_transient_failures_total") == len(failed)
    rows = [catalog.get_document(d) for d in ids]
    assert all(r and r["waiting_since"] is None and r["retry_reason"] is None for r in rows)
    catalog.close()


@pytest.mark.anyio
async def test_the_deadline_ends_the_wait_with_the_last_reason(served: tuple[str, Behaviour], tmp_path: Path) -> None:
    url, b = served
    b.down_until = time.monotonic() + 60
    catalog, (doc_id,) = _docs(tmp_path, 1)
    upstream = Upstream(timeout_s=2, retries=0)
    embedder = MlApiEmbedder(upstream, url, None)
    t0 = time.monotonic()
    with pytest.raises(GaveUp, match=r"gave up after \d+ s waiting for ml-api: .*503.*model loading"):
        await Retrier(catalog, 1, OWNER).call(doc_id, Outage("ml-api", 0.05, 0.2), lambda: embedder.embed(["a"]))
    assert time.monotonic() - t0 < 3
    await upstream.close()
    catalog.close()


@pytest.mark.anyio
async def test_a_read_timeout_halves_the_batch_instead_of_resending_it(
    served: tuple[str, Behaviour], tmp_path: Path
) -> None:
    """More than 8 texts take longer than the read timeout. 32 texts: 32 times out, then 2 x 16 time out, then
    4 x 8 pass: the work sent is bounded (never the same batch again, never N re-sends by the client's retries)."""
    url, b = served
    b.slow_above, b.slow_s = 8, 1.5
    catalog, (doc_id,) = _docs(tmp_path, 1)
    upstream = Upstream(timeout_s=0.5, retries=2)  # retries cover connection errors, not read timeouts
    pump = EmbedPump(MlApiEmbedder(upstream, url, None), batch_size=32, concurrency=4)
    pump.start()
    try:
        texts = [f"t{i}" for i in range(32)]
        out = await Retrier(catalog, 60, OWNER).call(doc_id, Outage("ml-api", 0.05, 0.2), lambda: pump.embed(texts))
    finally:
        await pump.stop()
        await upstream.close()
    assert out.shape == (32, DIM)
    assert sorted(b.sizes, reverse=True) == [32, 16, 16, 8, 8, 8, 8], b.sizes
    assert pump.batch_size == 8
    catalog.close()
