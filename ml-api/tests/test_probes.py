"""Liveness and readiness as TEI does them: /live reads state and never queues; /ready (and /health) take a recent
batch as proof and run a forward pass only without one, admitted like a client."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from conftest import ROOT, Server, base_env, stop_server
from devharness import free_port, spawn, wait_for, wait_healthy

from ml_api import health
from ml_api.batching import Batcher
from ml_api.errors import Unhealthy

HEAVY = ["an extended discussion of climate feedback loops and ocean heat uptake " * 10] * 256


@pytest.fixture
def fresh(tmp_path) -> Iterator[Server]:
    """A server nobody has probed yet (started on /live, which runs no model), admitting two requests."""
    port = free_port()
    env = base_env(PORT=str(port), MAX_CONCURRENT_REQUESTS="2")
    srv = spawn([sys.executable, "-m", "ml_api", "serve"], env, tmp_path / "probe.log", cwd=ROOT,
                url=f"http://127.0.0.1:{port}", name="ml-api (probes)")  # fmt: skip
    srv = wait_healthy(srv, "/live", 180, interval=0.5)
    yield srv
    stop_server(srv)


def _in_flight(srv: Server, n: int) -> bool:
    return httpx.get(srv.url + "/info", timeout=5).json()["queue"]["in_flight"] >= n


def test_ready_runs_a_forward_pass_only_without_a_recent_batch(fresh: Server) -> None:
    with fresh.client() as c:
        live = c.get("/live")
        assert live.status_code == 200
        assert live.json()["batchers"]["embed"]["last_success_age_s"] is None  # nothing ran yet
        assert c.get("/ready").json() == {"status": "ready", "embed": "forward pass", "rerank": "forward pass"}
        assert c.get("/ready").json() == {"status": "ready", "embed": "recent batch", "rerank": "recent batch"}
        assert c.get("/health").json() == {"status": "ok", "embed": "ok", "rerank": "ok"}  # TEI's body, same rule
        assert c.get("/live").json()["batchers"]["rerank"]["last_success_age_s"] >= 0

        async def saturated() -> tuple[list[float], int, dict, int]:
            async with httpx.AsyncClient(base_url=fresh.url, timeout=180) as ac:
                heavy = [asyncio.create_task(ac.post("/embed", json={"inputs": HEAVY})) for _ in range(2)]
                await asyncio.to_thread(wait_for, lambda: _in_flight(fresh, 2), 60, 0.05, what="admission full")
                refused = (await ac.post("/embed", json={"inputs": ["one more"]})).status_code
                lives = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    assert (await ac.get("/live")).status_code == 200
                    lives.append(time.perf_counter() - t0)
                ready = await ac.get("/ready")
                statuses = [(await h).status_code for h in heavy]
                assert statuses == [200, 200]
                return lives, refused, ready.json(), ready.status_code

        lives, refused, ready, ready_status = asyncio.run(saturated())
    assert refused == 429  # the server is full...
    assert max(lives) < 1.0, lives  # ...and liveness answers at once, queued behind nobody
    assert ready_status == 200 and ready["embed"] == "recent batch"  # no forward pass sent into a full server


def test_ready_is_refused_when_full_with_no_recent_batch(fresh: Server) -> None:
    async def scenario() -> tuple[int, int, str]:
        async with httpx.AsyncClient(base_url=fresh.url, timeout=180) as ac:
            heavy = [asyncio.create_task(ac.post("/embed", json={"inputs": HEAVY})) for _ in range(2)]
            await asyncio.to_thread(wait_for, lambda: _in_flight(fresh, 2), 60, 0.05, what="admission full")
            ready = await ac.get("/ready")
            live = await ac.get("/live")
            await asyncio.gather(*heavy)
            return ready.status_code, live.status_code, ready.json()["error"]

    ready, live, reason = asyncio.run(scenario())
    assert (ready, live) == (429, 200), reason  # the probe's forward pass is admitted like a client's, or refused
    assert "MAX_CONCURRENT_REQUESTS" in reason


class _Engine:
    def __init__(self, *batchers: Batcher) -> None:
        self.batchers = batchers


def test_liveness_fails_on_a_stopped_or_stuck_batcher(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def slow(items: list[int]) -> list[int]:
        release.wait(10)
        return items

    async def scenario() -> None:
        batcher: Batcher = Batcher("embed", slow, max_batch_tokens=64, max_batch_size=8, padding_split_tokens=0)
        engine = _Engine(batcher)
        with pytest.raises(Unhealthy, match="stopped"):
            health.liveness(engine)  # never started
        batcher.start()
        assert health.liveness(engine)["embed"] == {"last_success_age_s": None, "queued": 0}
        work = asyncio.ensure_future(batcher.submit([1], [1]))
        await asyncio.sleep(0.2)
        monkeypatch.setattr(health, "STUCK_BATCH_S", 0.1)
        with pytest.raises(Unhealthy, match="has run for"):
            health.liveness(engine)  # a batch on the device for longer than any should take
        release.set()
        assert await work == [1]
        assert health.liveness(engine)["embed"]["last_success_age_s"] >= 0
        await batcher.stop()
        with pytest.raises(Unhealthy, match="stopped"):
            health.liveness(engine)

    asyncio.run(scenario())
