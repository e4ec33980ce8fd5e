"""The job: parse → chunk → embed (pipelined ml-api calls) → upsert → publish atomically.

Jobs run on a small pool of asyncio workers in this process. A document is published (made visible to
queries) in one catalog transaction after all of its points are in the store; the same transaction retires
older versions of the same file. Every call to ml-api / the embeddings API / the store goes through `outages`,
which waits out transient failures; a permanent failure (or the retry deadline) ends as the document's `failed`
state with its reason, its partial points are dropped (or stay hidden until the next start drops them) and its
upload is kept for a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from rag_backend.catalog import DocumentStatus
from rag_backend.chunking import Chunk, Chunker
from rag_backend.core.config import Settings
from rag_backend.core.metrics import INGEST_CHUNKS, INGEST_FINISHED, STORE_LATENCY
from rag_backend.embedding import Embedder, check_identity, space_for
from rag_backend.errors import DomainError
from rag_backend.ingestion.outages import JobCancelled, Outage, Retrier
from rag_backend.ingestion.pump import EmbedPump
from rag_backend.ingestion.recovery import delete_points, drop_points, purge
from rag_backend.ingestion.state import Jobs
from rag_backend.lexical import Lexical
from rag_backend.parsing import ParseError, ParseLimits, parse_isolated
from rag_backend.store import ChunkPayload, ChunkPoint, StoreError

log = logging.getLogger("rag_backend.ingestion")
_T = TypeVar("_T")
POINT_NAMESPACE = uuid.UUID("6f1c1f4e-6f0a-4d55-9a57-2b3f3f1f0c11")


@dataclass(slots=True)
class _Prepared:
    """A parsed and chunked document waiting for its embeddings."""

    doc: dict[str, Any]
    title: str | None
    chunks: list[Chunk]
    space: str
    started: float


class ChunkBudget:
    """Counting gate on chunks in flight; one oversized document may pass alone so nothing waits forever."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + n <= self.limit)
            self.used += n

    def release(self, n: int) -> None:
        self.used -= n
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class Pipeline:
    """The workers. A worker parses and chunks one document, then hands embedding + indexing to a task of its own
    and takes the next document: many small documents are in flight at once (their chunks fill the pump's
    batches), bounded by INGEST_INFLIGHT_CHUNKS so a flood of uploads cannot pile up in memory."""

    def __init__(self, settings: Settings, jobs: Jobs, embedder: Embedder, chunker: Chunker, lexical: Lexical) -> None:
        self.s, self.jobs, self.embedder, self.chunker, self.lexical = settings, jobs, embedder, chunker, lexical
        self.catalog, self.store = jobs.catalog, jobs.store
        self.pump = EmbedPump(embedder, settings.embed_batch_size, settings.embed_concurrency)
        self._budget = ChunkBudget(settings.ingest_inflight_chunks)
        self.retrier = Retrier(self.catalog, settings.ingest_retry_deadline_s)
        backoff = (settings.ingest_retry_initial_s, settings.ingest_retry_max_s)
        name = f"the embedder ({embedder.provider})" if embedder else "the embedder"
        self.embedder_outage = Outage(name, *backoff, metric="embedder")
        self.store_outage = Outage("the vector store", *backoff, metric="store")
        self._workers: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.pump.start()
        self._workers = [asyncio.create_task(self._worker(), name=f"ingest-{i}") for i in range(self.s.ingest_workers)]

    async def stop(self) -> None:
        """Unfinished jobs stay in their stage; the next start resumes them from their upload."""
        tasks = [*self._workers, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        await self.pump.stop()

    # -- scheduling ---------------------------------------------------------------------------------
    async def _worker(self) -> None:
        while True:
            doc_id = await self.jobs.queue.get()
            self._begin(doc_id)
            handed_over = False
            try:
                prepared = await self._guarded(doc_id, self._prepare(doc_id))
                if prepared is not None:
                    await self._budget.acquire(len(prepared.chunks))
                    task = asyncio.create_task(self._complete(prepared))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                    handed_over = True
            finally:
                if not handed_over:
                    self._end(doc_id)

    async def _complete(self, job: _Prepared) -> None:
        try:
            await self._guarded(job.doc["id"], self._finish(job))
        finally:
            self._budget.release(len(job.chunks))
            self._end(job.doc["id"])

    def _begin(self, doc_id: str) -> None:
        self.jobs.running[doc_id] = asyncio.Event()

    def _end(self, doc_id: str) -> None:
        self.jobs.running.pop(doc_id).set()
        self.jobs.queue.task_done()

    async def _guarded(self, doc_id: str, step: Coroutine[Any, Any, _T]) -> _T | None:
        """Runs one step of a job; every failure ends as the document's `failed` state with its reason."""
        try:
            return await step
        except JobCancelled:
            await self._after_cancel(doc_id)
        except (DomainError, StoreError) as exc:  # parsing, embedding identity, upstream: the reason is shown
            await self._fail(doc_id, getattr(exc, "message", str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one document kill a worker
            log.exception("ingestion of %s crashed", doc_id)
            await self._fail(doc_id, "internal error during ingestion (see the backend log)")
        return None

    def _embedding(self, doc_id: str, fn: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
        return self.retrier.call(doc_id, self.embedder_outage, fn)

    def _storing(self, doc_id: str, fn: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
        return self.retrier.call(doc_id, self.store_outage, fn)

    def _stage(self, doc_id: str, stage: DocumentStatus, **fields: Any) -> None:
        if not self.catalog.set_stage(doc_id, stage, **fields):
            raise JobCancelled

    # -- the steps ----------------------------------------------------------------------------------
    async def _prepare(self, doc_id: str) -> _Prepared:
        doc = self.catalog.get_document(doc_id)
        if doc is None or doc["status"] != DocumentStatus.QUEUED:
            raise JobCancelled
        start = time.perf_counter()
        collection = doc["collection"]
        if doc["has_points"]:  # a restarted job: drop what the interrupted run wrote
            await self._storing(doc_id, lambda: delete_points(self.jobs, doc))

        self._stage(doc_id, DocumentStatus.PARSING, progress=0.02)
        data = await asyncio.to_thread(self.jobs.upload_path(doc_id).read_bytes)
        parsed = await asyncio.to_thread(parse_isolated, data, doc["format"], ParseLimits.from_settings(self.s))
        pages = max((s.page or 0 for s in parsed.sections), default=0) or None

        self._stage(doc_id, DocumentStatus.CHUNKING, progress=0.08, title=parsed.title, pages=pages)
        chunks = await asyncio.to_thread(self.chunker.chunk, parsed)
        if not chunks:
            raise ParseError("no text to index after chunking")

        identity = await self._embedding(doc_id, self.embedder.identity)
        coll = self.catalog.get_collection(collection)
        check_identity(collection, coll.embed_key if coll else None, identity)
        space = space_for(identity)
        await self._storing(doc_id, lambda: self.store.ensure_space(space, identity.dim))
        coll = self.catalog.bind_collection(collection, identity.key, space)
        check_identity(collection, coll.embed_key, identity)  # a concurrent job may have bound it first
        self._stage(doc_id, DocumentStatus.EMBEDDING, progress=0.1, chunks=len(chunks), chunks_done=0, has_points=1)
        return _Prepared(doc, parsed.title, chunks, space, start)

    async def _finish(self, job: _Prepared) -> None:
        doc_id, collection = job.doc["id"], job.doc["collection"]
        await self._embed_and_upsert(job.doc, job.title, job.chunks, job.space)

        self._stage(doc_id, DocumentStatus.INDEXING, progress=0.97)
        stored = await self._storing(doc_id, lambda: self.store.count(job.space, collection, doc_id))
        if stored != len(job.chunks):
            raise StoreError(f"store holds {stored} of {len(job.chunks)} chunks after indexing")
        replaced = self.catalog.publish(doc_id, collection)
        if replaced is None:
            raise JobCancelled
        INGEST_CHUNKS.inc(len(job.chunks))
        INGEST_FINISHED.labels("ready").inc()
        self.jobs.upload_path(doc_id).unlink(missing_ok=True)
        for old_id in replaced:
            if old := self.catalog.get_document(old_id):
                await purge(self.jobs, old)
        seconds = round(time.perf_counter() - job.started, 3)
        log.info("indexed", extra={"fields": {"document_id": doc_id, "chunks": len(job.chunks), "seconds": seconds}})

    async def _embed_and_upsert(self, doc: dict[str, Any], title: str | None, chunks: list[Chunk], space: str) -> None:
        """Hands batches to the pump (which fills ml-api requests across documents); upserts as they land."""
        doc_id = doc["id"]
        size = self.s.embed_batch_size
        batches = [chunks[i : i + size] for i in range(0, len(chunks), size)]
        gate = asyncio.Semaphore(self.s.embed_concurrency)
        done = 0
        last_report = 0.0
        stop = False

        async def one(batch: list[Chunk]) -> None:
            nonlocal done, last_report, stop
            async with gate:
                if stop:
                    return
                current = self.catalog.get_document(doc_id)
                if current is None or current["status"] != DocumentStatus.EMBEDDING:
                    stop = True
                    return
                try:
                    texts = [c.text for c in batch]
                    vectors = await self._embedding(doc_id, lambda: self.pump.embed(texts))
                except BaseException:
                    stop = True
                    raise
            points = [self._point(doc, title, chunk, vec) for chunk, vec in zip(batch, vectors, strict=True)]
            t0 = time.perf_counter()
            try:
                await self._storing(doc_id, lambda: self.store.upsert(space, points))
            except BaseException:
                stop = True
                raise
            STORE_LATENCY.labels("upsert").observe(time.perf_counter() - t0)
            done += len(batch)
            now = time.monotonic()
            if now - last_report > 0.25 or done == len(chunks):
                last_report = now
                progress = 0.1 + 0.85 * done / len(chunks)
                self.catalog.set_stage(doc_id, DocumentStatus.EMBEDDING, chunks_done=done, progress=progress)

        # gather, not a TaskGroup: every write finishes (or fails) before the caller cleans up, so no
        # cancelled upsert can land after the job's points were dropped.
        results = await asyncio.gather(*(one(b) for b in batches), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        if stop:
            raise JobCancelled

    def _point(self, doc: dict[str, Any], title: str | None, chunk: Chunk, vector: Any) -> ChunkPoint:
        indices, values = self.lexical.document(chunk.text)
        payload = ChunkPayload(
            collection=doc["collection"],
            document_id=doc["id"],
            source=doc["filename"],
            title=title,
            text=chunk.text,
            position=chunk.position,
            page=chunk.page,
            heading=chunk.heading,
            tokens=chunk.tokens,
        )
        point_id = str(uuid.uuid5(POINT_NAMESPACE, f"{doc['id']}:{chunk.position}"))
        return ChunkPoint(point_id, vector, indices, values, payload)

    # -- endings ------------------------------------------------------------------------------------
    async def _fail(self, doc_id: str, reason: str) -> None:
        log.warning("ingestion failed", extra={"fields": {"document_id": doc_id, "reason": reason}})
        INGEST_FINISHED.labels("failed").inc()
        self.catalog.fail(doc_id, reason)
        await drop_points(self.jobs, doc_id)  # the upload stays: `retry` runs the job again from it

    async def _after_cancel(self, doc_id: str) -> None:
        doc = self.catalog.get_document(doc_id)
        if doc and doc["status"] == DocumentStatus.DELETING:
            await purge(self.jobs, doc)
        else:
            await drop_points(self.jobs, doc_id)
