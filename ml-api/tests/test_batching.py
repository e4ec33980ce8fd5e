"""The batcher's planning, cancellation and out-of-memory splitting, on a real asyncio loop.

The model here is a plain function that records what it was given, so the tests can see exactly
which items reached a forward pass; the HTTP-level tests cover the same paths with the real models.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ml_api.batching import Batcher, BatchTiming, plan_batches


def test_plan_respects_token_budget_and_size() -> None:
    lengths = [100] * 10
    batches = plan_batches(lengths, max_tokens=400, max_size=64, split_padding=10_000)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(len(b) * 100 <= 400 for b in batches)
    assert [len(b) for b in plan_batches(lengths, max_tokens=10_000, max_size=3, split_padding=10_000)] == [3, 3, 3, 1]


def test_plan_sorts_and_splits_on_padding() -> None:
    lengths = [300, 10, 12, 11, 290, 9]
    batches = plan_batches(lengths, max_tokens=100_000, max_size=64, split_padding=200)
    assert [sorted(lengths[i] for i in b) for b in batches] == [[9, 10, 11, 12], [290, 300]]
    assert plan_batches(lengths, max_tokens=100_000, max_size=64, split_padding=10_000) == [[5, 1, 3, 2, 4, 0]]


def test_plan_covers_every_item_once() -> None:
    lengths = [7, 3, 250, 64, 64, 1, 128, 33] * 9
    batches = plan_batches(lengths, max_tokens=1024, max_size=16, split_padding=256)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 1024 for b in batches)


class RecordingModel:
    def __init__(self, gate: threading.Event | None = None, oom_above: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.gate = gate
        self.oom_above = oom_above

    def __call__(self, payloads: list[str]) -> list[str]:
        if self.gate is not None:
            self.gate.wait(10)
        if self.oom_above is not None and len(payloads) > self.oom_above:
            raise RuntimeError("CUDA failure 2: out of memory")
        self.calls.append(list(payloads))
        return [p.upper() for p in payloads]


def _batcher(model: RecordingModel, **kw: int) -> Batcher:
    from ml_api.session import is_oom

    opts = {"max_batch_tokens": 1000, "max_batch_size": 64, "padding_split_tokens": 10_000, **kw}
    return Batcher("test", model, is_oom=is_oom, **opts)


async def _held(first: str, **kw: int) -> tuple[threading.Event, RecordingModel, Batcher, asyncio.Task[list[str]]]:
    """A started batcher whose first request (`first`, alone) is on the device, held there until the gate opens."""
    gate = threading.Event()
    model = RecordingModel(gate)
    b = _batcher(model, **kw)
    b.start()
    task = asyncio.create_task(b.submit([first], [1]))
    await asyncio.sleep(0.05)  # the batch is now blocked inside the model
    return gate, model, b, task


def test_results_come_back_in_order_with_timing() -> None:
    async def main() -> None:
        model = RecordingModel()
        b = _batcher(model)
        b.start()
        timing = BatchTiming()
        out = await b.submit(["ccc", "a", "bb"], [3, 1, 2], timing)
        assert out == ["CCC", "A", "BB"]
        assert model.calls == [["a", "bb", "ccc"]]  # one length-sorted batch
        assert timing.inference_s >= 0 and timing.queue_s >= 0
        await b.stop()

    asyncio.run(main())


def test_concurrent_submissions_share_a_batch() -> None:
    async def main() -> None:
        gate, model, b, first = await _held("warm")
        rest = [asyncio.create_task(b.submit([f"r{i}"], [2])) for i in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        await first
        assert [
            r.result() for r in await asyncio.wait_for(asyncio.gather(*rest, return_exceptions=True), 5) and rest
        ] == [[f"R{i}"] for i in range(10)]
        assert len(model.calls) == 2 and len(model.calls[1]) == 10
        await b.stop()

    asyncio.run(main())


def test_sort_window_groups_like_lengths_across_requests() -> None:
    async def main() -> None:
        gate, model, b, first = await _held(
            "warm", max_batch_tokens=400, sort_window_tokens=10_000, padding_split_tokens=100
        )
        requests = [asyncio.create_task(b.submit([f"s{i}", f"L{i}"], [10, 200])) for i in range(4)]
        await asyncio.sleep(0.05)
        gate.set()
        await first
        await asyncio.gather(*requests)
        # one round: the four short texts share a batch, the long ones pair up under the 400-token budget
        assert sorted(model.calls[1:]) == [["L0", "L1"], ["L2", "L3"], ["s0", "s1", "s2", "s3"]]
        await b.stop()

    asyncio.run(main())


def test_cancelled_items_never_reach_the_model() -> None:
    async def main() -> None:
        gate, model, b, first = await _held("keep")
        doomed = asyncio.create_task(b.submit(["drop1", "drop2"], [2, 2]))
        kept = asyncio.create_task(b.submit(["also"], [2]))
        await asyncio.sleep(0.05)
        doomed.cancel()
        await asyncio.sleep(0)
        gate.set()
        assert await first == ["KEEP"] and await kept == ["ALSO"]
        with pytest.raises(asyncio.CancelledError):
            await doomed
        seen = [p for call in model.calls for p in call]
        assert "drop1" not in seen and "drop2" not in seen
        await b.stop()

    asyncio.run(main())


def test_out_of_memory_splits_instead_of_failing() -> None:
    async def main() -> None:
        model = RecordingModel(oom_above=2)
        b = _batcher(model)
        b.start()
        items = [f"t{i}" for i in range(7)]
        assert await b.submit(items, [1] * 7) == [s.upper() for s in items]
        assert all(len(call) <= 2 for call in model.calls)
        await b.stop()

    asyncio.run(main())


def test_model_errors_reach_the_caller() -> None:
    def broken(_: list[str]) -> list[str]:
        raise ValueError("shape mismatch")

    async def main() -> None:
        b = Batcher("broken", broken, max_batch_tokens=100, max_batch_size=8, padding_split_tokens=0)
        b.start()
        with pytest.raises(ValueError, match="shape mismatch"):
            await b.submit(["x"], [1])
        assert await asyncio.wait_for(asyncio.shield(asyncio.sleep(0, "alive")), 1) == "alive"
        await b.stop()

    asyncio.run(main())


class SlowModel:
    """Takes `per_token_s` of wall time per real token: a model of known throughput."""

    def __init__(self, per_token_s: float) -> None:
        self.per_token_s = per_token_s

    def __call__(self, payloads: list[int]) -> list[int]:
        time.sleep(self.per_token_s * sum(payloads))
        return payloads


def test_drain_estimate_follows_queued_tokens_and_throughput() -> None:
    """Retry-After's source: outstanding tokens over the measured rate, back to zero once all is answered."""

    async def main() -> None:
        b = Batcher("slow", SlowModel(0.0005), max_batch_tokens=100, max_batch_size=64, padding_split_tokens=0)
        b.start()
        assert b.drain_seconds() == 0
        await b.submit([100] * 4, [100] * 4)  # 400 tokens at ~2000 tokens/s: the rate is now known
        assert b.drain_seconds() == 0
        queued = asyncio.create_task(b.submit([100] * 20, [100] * 20))  # 2000 tokens: about 1 s of work
        await asyncio.sleep(0.01)
        estimate = b.drain_seconds()
        started = time.perf_counter()
        await queued
        actual = time.perf_counter() - started
        assert 0.5 * actual <= estimate <= 2 * actual + 0.1, (estimate, actual)
        assert b.drain_seconds() == 0
        cancelled = asyncio.create_task(b.submit([100] * 10, [100] * 10))
        await asyncio.sleep(0.01)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        await b.submit([1], [1])  # the loop drops the cancelled items before this one
        assert b.drain_seconds() == 0, "cancelled items no longer count"
        await b.stop()

    asyncio.run(main())


def test_stop_finishes_the_batch_on_the_device() -> None:
    """A lone request goes to the inference thread without the scheduler; stopping still waits for its answer."""

    async def main() -> None:
        gate, _, b, lone = await _held("q")  # a lone request: no scheduler between it and the device
        assert b.running_since is not None and b.queue_size == 0
        stopping = asyncio.create_task(b.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        gate.set()
        assert await lone == ["Q"]
        await asyncio.wait_for(stopping, 5)
        assert b.last_success is not None and b.running_since is None

    asyncio.run(main())
