"""Cross-document embedding batches for ingestion.

Many small documents would otherwise each send ml-api a request of one or two chunks, paying a round
trip per chunk and leaving ml-api's batcher starved. The pump pools the chunks of every running job and
sends full batches of EMBED_BATCH_SIZE, keeping EMBED_CONCURRENCY requests in flight; while all slots
are busy, chunks accumulate, so under load every request is full.

A read timeout is not re-sent here (ml-api may still be computing it): the pump halves its batch size, and the
job's retry (see `outages`) sends the texts again in smaller requests; after a run of successes the size grows
back, so one slow moment does not leave ingestion on tiny batches.
"""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np

from rag_backend.embedding import Embedder
from rag_backend.upstream import UpstreamTimeout

GROW_AFTER = 8  # successful requests in a row before a halved batch size doubles again


class EmbedPump:
    def __init__(
        self, embedder: Embedder, batch_size: int, concurrency: int | asyncio.Semaphore, model: str | None = None
    ) -> None:
        self.embedder, self.model = embedder, model  # a batch goes to one model: one pump per model
        self.max_batch_size = batch_size
        self.batch_size = batch_size
        self._successes = 0
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] = asyncio.Queue()
        # Requests in flight; a semaphore shared by the pumps of several models bounds them all together.
        self._slots = concurrency if isinstance(concurrency, asyncio.Semaphore) else asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="embed-pump")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            fut.cancel()

    async def embed(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in texts]
        for text, fut in zip(texts, futures, strict=True):
            self._queue.put_nowait((text, fut))
        try:
            return np.stack(await asyncio.gather(*futures))
        except BaseException:
            for fut in futures:  # the pump skips what nobody waits for any more
                fut.cancel()
            raise

    def _take(self, batch: list[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        while len(batch) < self.batch_size and not self._queue.empty():
            item = self._queue.get_nowait()
            if not item[1].done():
                batch.append(item)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first[1].done():
                continue
            batch = [first]
            await self._slots.acquire()
            self._take(batch)  # topped up with everything that arrived while the slots were busy
            batch = [item for item in batch if not item[1].done()]
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._send(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _send(self, batch: list[tuple[str, asyncio.Future[np.ndarray]]]) -> None:
        try:
            texts = [text for text, _ in batch]
            vectors = await self.embedder.embed(texts, model=self.model, retry_read_timeout=False)
        except Exception as exc:
            self._successes = 0
            if isinstance(exc, UpstreamTimeout):
                self.batch_size = max(1, min(self.batch_size, len(batch) // 2))  # one halving per size that failed
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            self._successes += 1
            if self._successes >= GROW_AFTER and self.batch_size < self.max_batch_size:
                self.batch_size, self._successes = min(self.max_batch_size, self.batch_size * 2), 0
            for (_, fut), vector in zip(batch, vectors, strict=True):
                if not fut.done():
                    fut.set_result(vector)
        finally:
            self._slots.release()
