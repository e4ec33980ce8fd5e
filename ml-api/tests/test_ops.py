"""/health, /info, /metrics: what operators and dashboards read."""

from __future__ import annotations

import asyncio
import time

import httpx
from conftest import metric


def test_health_runs_both_models(http) -> None:
    res = http.get("/health")
    assert res.status_code == 200
    assert res.json() == {"status": "ok", "embed": "ok", "rerank": "ok"}


def test_info(http) -> None:
    info = http.get("/info").json()
    assert info["device"] == "cpu" and "DEVICE=cpu" in info["device_reason"]
    assert info["embedding"]["dimension"] == 384 and info["embedding"]["max_length"] == 256
    assert info["embedding"]["providers"] == ["CPUExecutionProvider"]
    assert info["reranking"]["fp16"] is False and info["reranking"]["max_length"] == 512
    assert info["batching"]["max_batch_tokens"] == 4096  # the CPU default
    assert info["batching"]["over_client_batch"] == "413"


def test_metrics_count_requests_and_batches(http) -> None:
    before = http.get("/metrics").text
    http.post("/embed", json={"inputs": ["metrics one", "metrics two"]})
    http.post("/embed", json={"inputs": ""})
    http.post("/rerank", json={"query": "q", "texts": ["a", "b", "c"]})
    after = http.get("/metrics").text
    assert (
        metric(after, "mlapi_requests_total", route="/embed", status="200")
        - metric(before, "mlapi_requests_total", route="/embed", status="200")
        == 1
    )
    assert (
        metric(after, "mlapi_requests_total", route="/embed", status="422")
        - metric(before, "mlapi_requests_total", route="/embed", status="422")
        == 1
    )
    assert (
        metric(after, "mlapi_batch_size_sum", model="rerank") - metric(before, "mlapi_batch_size_sum", model="rerank")
        == 3
    )
    for name in (
        "mlapi_queue_size",
        "mlapi_batch_tokens_count",
        "mlapi_tokenization_duration_seconds_count",
        "mlapi_queue_duration_seconds_count",
        "mlapi_inference_duration_seconds_count",
        "mlapi_request_duration_seconds_count",
    ):
        assert name in after


def test_requests_are_batched_across_clients(server, http) -> None:
    """32 clients sending one text each at once end up in far fewer than 32 forward passes."""
    before = http.get("/metrics").text

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            texts = [f"concurrent client number {i} asks about topic {i * 7}" for i in range(32)]
            return [r.status_code for r in await asyncio.gather(*(c.post("/embed", json={"inputs": t}) for t in texts))]

    assert asyncio.run(burst()) == [200] * 32
    after = http.get("/metrics").text
    batches = metric(after, "mlapi_batch_size_count", model="embed") - metric(
        before, "mlapi_batch_size_count", model="embed"
    )
    items = metric(after, "mlapi_batch_size_sum", model="embed") - metric(before, "mlapi_batch_size_sum", model="embed")
    assert items == 32
    assert batches < 16, f"{batches} batches for 32 concurrent texts"


def test_inference_runs_off_the_event_loop(server, http) -> None:
    """While a large batch is computing, a route that needs no model still answers at once."""
    texts = ["a long passage on molecular biology and protein folding dynamics " * 10] * 256

    async def scenario() -> tuple[float, int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as c:
            heavy = asyncio.create_task(c.post("/embed", json={"inputs": texts}))
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            info = await c.get("/info")
            latency = time.perf_counter() - t0
            assert info.status_code == 200
            assert not heavy.done(), "heavy request finished too soon to prove anything"
            return latency, (await heavy).status_code

    latency, status = asyncio.run(scenario())
    assert status == 200
    assert latency < 0.5, f"/info took {latency:.3f}s while a batch was running"


def test_cancelled_request_is_dropped_before_inference(server, http) -> None:
    """A client that gives up while queued costs no forward pass."""
    heavy = ["an extended discussion of climate feedback loops and ocean heat uptake " * 10] * 256
    before = http.get("/metrics").text

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as c:
            blocker = asyncio.create_task(c.post("/embed", json={"inputs": heavy}))
            await asyncio.sleep(0.3)
            try:
                await c.post("/embed", json={"inputs": heavy[:128]}, timeout=0.3)
            except httpx.TimeoutException:
                pass
            assert (await blocker).status_code == 200

    asyncio.run(scenario())
    time.sleep(0.5)
    after = http.get("/metrics").text
    dropped = metric(after, "mlapi_cancelled_items_total", model="embed") - metric(
        before, "mlapi_cancelled_items_total", model="embed"
    )
    assert dropped == 128
    assert metric(after, "mlapi_requests_total", route="/embed", status="499") >= 1
