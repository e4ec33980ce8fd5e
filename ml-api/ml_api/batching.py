"""Dynamic batching across concurrent requests.

Every request's items go into one queue per model. A single loop takes a window of items in
arrival order (bounded by SORT_WINDOW_TOKENS of real tokens, several batches' worth), sorts it by
length, and cuts it into padded batches of at most MAX_BATCH_TOKENS and MAX_BATCH_SIZE items. A
run is also cut when keeping a much longer item in it would add more than PADDING_SPLIT_TOKENS of
padding (a second forward pass is cheaper than that much padding). Batches run one at a time on a
dedicated thread, so the event loop keeps accepting and tokenising while the model works, and the
next window grows with whatever arrived meanwhile (continuous batching). A request that finds the batcher
idle has nothing to wait for: it goes to the thread straight from `submit`, and the thread's one call back
to the loop answers it; the histograms are written after the answer.

Each batcher also knows how long its queue would take to drain (tokens not yet answered over the recent
throughput): the overload answer's Retry-After is built from it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ml_api.core import metrics

log = logging.getLogger("ml_api.batching")

P = TypeVar("P")
R = TypeVar("R")


@dataclass(slots=True)
class _Item(Generic[P]):
    payload: P
    length: int
    future: asyncio.Future
    enqueued: float
    started: float = 0.0
    finished: float = 0.0
    batch: int = 0  # size of the batch it ran in (trace attributes)


@dataclass(slots=True)
class BatchTiming:
    queue_s: float = 0.0
    inference_s: float = 0.0
    batches: int = 0
    # perf_counter marks and the largest batch this request's items rode in: what the trace spans are made of
    enqueued: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    batch_size: int = 0


def plan_batches(lengths: Sequence[int], max_tokens: int, max_size: int, split_padding: int) -> list[list[int]]:
    """Cut one window into padded batches; returns indices into `lengths`, each batch sorted by length."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    run: list[int] = []
    run_max = 0
    for i in order:
        n = lengths[i]
        if run:
            padded = (len(run) + 1) * n
            extra_padding = len(run) * (n - run_max)
            if padded > max_tokens or len(run) >= max_size or extra_padding > split_padding:
                batches.append(run)
                run, run_max = [], 0
        run.append(i)
        run_max = max(run_max, n)
    if run:
        batches.append(run)
    return batches


def split_on_oom(
    run: Callable[[list[P]], Sequence[R]],
    payloads: list[P],
    is_oom: Callable[[BaseException], bool],
    on_split: Callable[[], None],
) -> list[R]:
    """Retry an out-of-memory batch as two halves, down to single items, instead of failing the request."""
    try:
        return list(run(payloads))
    except Exception as exc:
        if len(payloads) < 2 or not is_oom(exc):
            raise
        on_split()
        mid = len(payloads) // 2
        log.warning("out of memory, splitting batch", extra={"fields": {"size": len(payloads)}})
        return split_on_oom(run, payloads[:mid], is_oom, on_split) + split_on_oom(run, payloads[mid:], is_oom, on_split)


class Batcher(Generic[P, R]):
    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[P]], Sequence[R]],
        *,
        max_batch_tokens: int,
        max_batch_size: int,
        padding_split_tokens: int,
        sort_window_tokens: int = 0,
        is_oom: Callable[[BaseException], bool] = lambda _: False,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self.max_batch_tokens = max_batch_tokens
        # Sorting over several batches' worth of items lets like lengths meet (less padding); 0 = one batch.
        self.sort_window_tokens = max(sort_window_tokens, max_batch_tokens)
        self.max_batch_size = max_batch_size
        self.padding_split_tokens = padding_split_tokens
        self._is_oom = is_oom
        self._pending: deque[_Item[P]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._done: asyncio.Future[None] | None = None  # the batch on the device now, resolved once answered
        self._in_window = False  # the scheduling task is working through a window of batches
        self._closing = False
        # One thread of its own fed by a SimpleQueue: a put and a wake per batch, where an executor's submit also
        # takes locks and builds a work item and a future (measurable on a short query's path).
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, list[_Item[P]], float] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._queue_gauge = metrics.QUEUE_SIZE.labels(name)
        # The series every batch updates, looked up once (labels() takes a lock and builds a key on every call).
        self._queue_time = metrics.QUEUE_TIME.labels(name)
        self._inference = metrics.INFERENCE.labels(name)
        self._batch_size = metrics.BATCH_SIZE.labels(name)
        self._batch_tokens = metrics.BATCH_TOKENS.labels(name)
        self._outstanding_tokens = 0  # submitted and not yet answered (queued or in the running batch)
        self._tokens_per_s: float | None = None  # moving average over recent batches
        # What liveness and readiness read (ml_api.health): no queueing, no forward pass.
        self.last_success: float | None = None  # perf_counter when a batch last finished without error
        self.running_since: float | None = None  # perf_counter when the batch now on the device started

    @property
    def alive(self) -> bool:
        """The scheduling task runs (it ends only on stop, or on a bug that would leave every request hanging)."""
        return self._task is not None and not self._task.done()

    def drain_seconds(self) -> float:
        """Time to answer everything submitted so far at the recent rate (one batch a second before any ran)."""
        rate = self._tokens_per_s or float(self.max_batch_tokens)
        return self._outstanding_tokens / rate

    def _settled(self, items: Sequence[_Item[P]]) -> None:
        self._outstanding_tokens -= sum(it.length for it in items)

    def _observe(self, tokens: int, seconds: float) -> None:
        rate = tokens / max(seconds, 1e-6)
        self._tokens_per_s = rate if self._tokens_per_s is None else 0.7 * self._tokens_per_s + 0.3 * rate

    @property
    def queue_size(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{self.name}-inference", daemon=True)
        self._thread.start()
        self._task = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Finish what is queued, then stop; uvicorn has already waited for in-flight requests."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()

    def _idle(self) -> bool:
        """Nothing queued, nothing on the device and no window being worked through."""
        return not self._pending and self._done is None and not self._in_window

    async def submit(self, payloads: Sequence[P], lengths: Sequence[int], timing: BatchTiming | None = None) -> list[R]:
        if self._task is None or self._task.done():
            raise RuntimeError(f"{self.name} batcher is not running")
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        items = [_Item(p, max(1, n), loop.create_future(), now) for p, n in zip(payloads, lengths, strict=True)]
        self._outstanding_tokens += sum(it.length for it in items)
        lone = self._lone_batch(items) if self._idle() else None
        if lone is not None:
            # An idle batcher has nothing to batch a lone request with: it goes to the device now, from here,
            # not through the scheduling task (one loop round trip less on a search box's query).
            self._dispatch(lone)
        else:
            self._pending.extend(items)
            self._queue_gauge.set(len(self._pending))
            assert self._wakeup is not None
            self._wakeup.set()
        try:
            # One item (a search box's query) awaits its future directly: gather would add a loop round trip.
            results = [await items[0].future] if len(items) == 1 else await asyncio.gather(*(it.future for it in items))
        except BaseException:
            for it in items:
                it.future.cancel()  # dropped from the queue before inference if not started yet
            raise
        if timing is not None:
            first = min(it.started for it in items)
            timing.queue_s = first - now
            timing.inference_s = max(it.finished for it in items) - first
            timing.enqueued, timing.started, timing.finished = now, first, first + timing.inference_s
            timing.batch_size = max(it.batch for it in items)
        return list(results)

    def _lone_batch(self, items: list[_Item[P]]) -> list[_Item[P]] | None:
        """The request's items as the one length-sorted batch the scheduler would make of them, if one."""
        if len(items) == 1:
            return items
        plan = self._plan(items)
        return [items[i] for i in plan[0]] if len(plan) == 1 else None

    def _plan(self, window: Sequence[_Item[P]]) -> list[list[int]]:
        lengths = [it.length for it in window]
        return plan_batches(lengths, self.max_batch_tokens, self.max_batch_size, self.padding_split_tokens)

    def _take_window(self) -> list[_Item[P]]:
        window: list[_Item[P]] = []
        tokens = 0
        cancelled = 0
        while self._pending:
            item = self._pending[0]
            if item.future.cancelled():
                self._pending.popleft()
                self._settled([item])
                cancelled += 1
                continue
            if window and tokens + item.length > self.sort_window_tokens:
                break
            self._pending.popleft()
            window.append(item)
            tokens += item.length
        if cancelled:
            metrics.CANCELLED.labels(self.name).inc(cancelled)
        self._queue_gauge.set(len(self._pending))
        return window

    def _execute(self, payloads: list[P]) -> list[R]:
        return split_on_oom(self._run_batch, payloads, self._is_oom, metrics.OOM_SPLITS.labels(self.name).inc)

    def _dispatch(self, batch: list[_Item[P]]) -> asyncio.Future[None]:
        """Start one batch on the inference thread; the returned future resolves once its answers are out."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        self.running_since = started
        for it in batch:
            it.started = started
            it.batch = len(batch)
        self._done = loop.create_future()
        self._jobs.put((loop, batch, started))
        return self._done

    def _serve(self) -> None:
        """The inference thread: one batch at a time, until stop() sends None."""
        while (job := self._jobs.get()) is not None:
            self._work(*job)

    def _work(self, loop: asyncio.AbstractEventLoop, batch: list[_Item[P]], started: float) -> None:
        """On the inference thread: the forward, then one call back to the loop that answers every item."""
        results: list[R] | None = None
        error: Exception | None = None
        try:
            results = self._execute([it.payload for it in batch])
        except Exception as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(self._finish, batch, started, time.perf_counter(), results, error)
        except RuntimeError:  # the loop closed under us (interpreter shutdown): nobody is waiting any more
            pass

    def _finish(
        self, batch: list[_Item[P]], started: float, finished: float, results: list[R] | None, error: Exception | None
    ) -> None:
        """On the loop: answers first, then the scheduler, then the metrics (after the responses are written)."""
        self.running_since = None
        if results is not None:
            self.last_success = finished
            for it, result in zip(batch, results, strict=True):
                it.finished = finished
                if not it.future.done():
                    it.future.set_result(result)
            self._observe(sum(it.length for it in batch), finished - started)
        else:
            log.error("batch failed", exc_info=error, extra={"fields": {"model": self.name, "size": len(batch)}})
            for it in batch:
                if not it.future.done():
                    it.future.set_exception(error)  # type: ignore[arg-type]
        self._settled(batch)
        done, self._done = self._done, None
        if done is not None:
            done.set_result(None)
        if results is not None:
            asyncio.get_running_loop().call_soon(self._record, batch, started, finished)

    def _record(self, batch: list[_Item[P]], started: float, finished: float) -> None:
        for it in batch:
            self._queue_time.observe(started - it.enqueued)
        self._inference.observe(finished - started)
        self._batch_size.observe(len(batch))
        self._batch_tokens.observe(len(batch) * max(it.length for it in batch))

    async def _loop(self) -> None:
        assert self._wakeup is not None
        while True:
            if self._done is not None:  # a lone request's batch is on the device: batch what comes meanwhile
                await self._done
                continue
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            window = self._take_window()
            if not window:
                continue
            self._in_window = True
            try:
                for indices in self._plan(window):
                    batch = [window[i] for i in indices if not window[i].future.cancelled()]
                    if len(batch) < len(indices):
                        metrics.CANCELLED.labels(self.name).inc(len(indices) - len(batch))
                        self._settled([window[i] for i in indices if window[i].future.cancelled()])
                    if batch:
                        await self._dispatch(batch)
            finally:
                self._in_window = False
