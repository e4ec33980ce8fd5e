"""Liveness and readiness as TEI does them: proof from recent work first, a forward pass only without it.

Liveness (`/live`) reads the batchers' state and nothing else: each scheduling task runs and no batch has sat on
the device for longer than STUCK_BATCH_S. It never queues behind clients, so a saturated server stays alive.
Readiness (`/ready`, and `/health` as TEI has it) counts a batch that finished within RECENT_S as proof that a
model answers; only a model with no such batch gets a real forward pass, admitted like any request (past
MAX_CONCURRENT_REQUESTS the probe is refused as a client would be) and shared by concurrent probes.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import numpy as np

from ml_api.batching import Batcher
from ml_api.errors import Unhealthy

RECENT_S = 30.0  # a batch finished this recently proves its model answers
STUCK_BATCH_S = 300.0  # no forward pass of ours takes this long: the device or the runtime hangs


def _age(batcher: Batcher, now: float) -> float | None:
    return None if batcher.last_success is None else round(now - batcher.last_success, 3)


def liveness(engine: Any) -> dict[str, Any]:
    """The batchers' state; raises Unhealthy when one is dead or stuck (the process should be restarted)."""
    now = time.perf_counter()
    report: dict[str, Any] = {}
    for batcher in engine.batchers:
        if not batcher.alive:
            raise Unhealthy(f"the {batcher.name} batcher has stopped")
        running = None if batcher.running_since is None else now - batcher.running_since
        if running is not None and running > STUCK_BATCH_S:
            raise Unhealthy(f"a {batcher.name} batch has run for {running:.0f}s (over {STUCK_BATCH_S:.0f}s)")
        report[batcher.name] = {"last_success_age_s": _age(batcher, now), "queued": batcher.queue_size}
    return report


class Readiness:
    """One per engine: concurrent probes that need a forward pass share it."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._check: asyncio.Task[None] | None = None

    def _models(self) -> dict[str, tuple[str, str, Any]]:
        """label -> (kind, served name, slot): the default model of a kind under the kind's name, as in metrics."""
        out: dict[str, tuple[str, str, Any]] = {}
        for kind, slots in (("embed", self.engine.embedders), ("rerank", self.engine.rerankers)):
            for n, (name, slot) in enumerate(slots.items()):
                out[kind if n == 0 else f"{kind}:{name}"] = (kind, name, slot)
        return out

    async def ready(self) -> dict[str, str]:
        """{"embed": how, "rerank": how, ...} where how is "recent batch" or "forward pass"; Unhealthy otherwise."""
        liveness(self.engine)
        now = time.perf_counter()
        models = self._models()
        stale = [
            label
            for label, (_, _, slot) in models.items()
            if slot.batcher.last_success is None or now - slot.batcher.last_success > RECENT_S
        ]
        if stale:
            if self._check is None or self._check.done():
                self._check = asyncio.ensure_future(self._forward(tuple(stale)))
            await asyncio.shield(self._check)
        return {label: "forward pass" if label in stale else "recent batch" for label in models}

    async def _forward(self, stale: tuple[str, ...]) -> None:
        engine = self.engine
        engine.acquire()  # Overloaded (429) when full: a probe waits in no queue of its own
        try:
            await asyncio.wait_for(self._run(stale), timeout=engine.args.health_timeout_s)
        except TimeoutError:
            raise Unhealthy(f"forward pass did not finish in {engine.args.health_timeout_s}s") from None
        except Unhealthy:
            raise
        except Exception as exc:
            raise Unhealthy(f"forward pass failed: {exc}") from exc
        finally:
            engine.release()

    async def _run(self, stale: tuple[str, ...]) -> None:
        engine, models = self.engine, self._models()
        for label in stale:
            kind, name, slot = models[label]
            if kind == "embed":
                vec = await engine.embed(["health check"], model=name)
                if vec.shape != (1, slot.model.dimension) or not np.isfinite(vec).all():
                    raise Unhealthy(f"embedder {name} returned {vec.shape} or non-finite values")
            else:
                scored = await engine.rerank("health", ["check"], model=name, raw_scores=True)
                if len(scored) != 1 or not math.isfinite(scored[0].score):
                    raise Unhealthy(f"reranker {name} returned a non-finite score")
