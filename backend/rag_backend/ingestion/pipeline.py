"""The job: parse → chunk → embed (pipelined ml-api calls) → upsert → publish atomically.

Jobs are claimed from the catalog (leased to this process, see rag_backend.catalog.base) by N slots: the API
process's INGEST_WORKERS, or `rag-backend worker --concurrency N`; any number of processes may claim from one
PostgreSQL catalog. A heartbeat renews the leases. A document is published (made visible to queries) in one catalog
transaction after all of its points are in the store; the same transaction retires older versions of the same file.

A job taken over from a process that stopped (killed, or its lease ran out) resumes from its last finished batch:
chunking is deterministic and point ids derive from (document, position), so the new run re-chunks, checks that the
chunks are the same ones (`chunks_sha`) and embeds only what lies past `chunks_done`, the prefix of chunks whose
batches are all stored. Upserting a point again with its id overwrites it: a chunk is never stored twice.

Every call to ml-api / the embeddings API / the store goes through `outages`, which waits out transient failures; a
permanent failure (or the retry deadline) ends as the document's `failed` state with its reason, its partial points
are dropped and its upload is kept for a retry (every document keeps its upload and parsed text until it goes).

Nothing here blocks the event loop (the API process runs these slots beside its routes): catalog calls go through
`catalog.run` (the catalog's pool), parsing and chunking run on this pipeline's own pool of one thread per slot.
A batch's points (BM25 vectors, payloads) are built on a pool of their own. A slot with no document to claim claims
a deleted collection to remove (`recovery.purge_collection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from rag_backend import traces
from rag_backend.catalog import STAGES, CatalogUnavailable, Collection, DocumentStatus
from rag_backend.chunking import Chunk, Chunker
from rag_backend.core.config import Settings
from rag_backend.core.metrics import INGEST_CHUNKS, INGEST_CLAIMS, INGEST_FINISHED, INGEST_RESUMED, STORE_LATENCY
from rag_backend.embedding import Embedder, bound_identity, check_identity, space_for
from rag_backend.errors import DomainError
from rag_backend.ingestion.outages import JobCancelled, LeaseLost, Outage, Retrier, stop_reason
from rag_backend.ingestion.pump import EmbedPump
from rag_backend.ingestion.recovery import delete_points, purge_collection, purge_now, settle
from rag_backend.ingestion.state import Jobs
from rag_backend.lexical import Lexical
from rag_backend.parsing import ParseError, ParseLimits, parse_isolated
from rag_backend.pools import Pool
from rag_backend.store import ChunkPayload, ChunkPoint, StoreError

log = logging.getLogger("rag_backend.ingestion")
_T = TypeVar("_T")
POINT_NAMESPACE = uuid.UUID("6f1c1f4e-6f0a-4d55-9a57-2b3f3f1f0c11")
MAX_ATTEMPTS = 10  # claims of one job (each after its process stopped mid-job) before it ends failed


@dataclass(slots=True)
class _Prepared:
    """A parsed and chunked document waiting for its embeddings."""

    doc: dict[str, Any]
    title: str | None
    chunks: list[Chunk]
    space: str
    model: str  # the served embedder the collection is bound to
    started: float
    resume_from: int  # chunks a previous run already stored


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


def chunks_sha(chunks: list[Chunk]) -> str:
    """What a resumed job compares: the same upload chunked by the same settings gives the same digest."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(f"{chunk.position}:{len(chunk.text)}:".encode())
        digest.update(chunk.text.encode())
    return digest.hexdigest()


class Pipeline:
    """The slots. A slot claims a job, parses and chunks it, then hands embedding + indexing to a task of its own and
    claims the next: many small documents are in flight at once (their chunks fill the pump's batches), bounded by
    INGEST_INFLIGHT_CHUNKS so a flood of uploads cannot pile up in memory."""

    def __init__(
        self, settings: Settings, jobs: Jobs, embedder: Embedder, chunker: Chunker, lexical: Lexical, slots: int
    ) -> None:
        self.s, self.jobs, self.embedder, self.chunker, self.lexical = settings, jobs, embedder, chunker, lexical
        self.catalog, self.store, self.owner = jobs.catalog, jobs.store, jobs.owner
        self.slots = slots
        self._pumps: dict[str, EmbedPump] = {}
        self._pump_slots = asyncio.Semaphore(settings.embed_concurrency)  # shared by every model's pump
        self._budget = ChunkBudget(settings.ingest_inflight_chunks)
        self.retrier = Retrier(self.catalog, settings.ingest_retry_deadline_s, self.owner)
        backoff = (settings.ingest_retry_initial_s, settings.ingest_retry_max_s)
        name = f"the embedder ({embedder.provider})" if embedder else "the embedder"
        self.embedder_outage = Outage(name, *backoff, metric="embedder")
        self.store_outage = Outage("the vector store", *backoff, metric="store")
        self._free = asyncio.Semaphore(slots)
        # Parsing waits on its forked parser (up to PARSE_TIMEOUT_S) and chunking is CPU: a thread per slot.
        self.parsing = Pool("parse", slots)
        # A batch's points (BM25 vectors from Qdrant's tokenizer, payloads): CPU work, never on the loop.
        self.preparing = Pool("points", 2)
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_heartbeat = time.monotonic()

    def start(self) -> None:
        if not self.slots:
            return
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="ingest-claims"),
            asyncio.create_task(self._heartbeat(), name="ingest-heartbeat"),
        ]

    async def stop(self) -> None:
        """Unfinished jobs stay in their stage and their leases end now: another process (or this one's next
        start) resumes them at once instead of after the lease."""
        held = set(self.jobs.running)  # before the cancelled jobs take themselves out of it
        tasks = [*self._loops, *self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loops = []
        for doc_id in held:
            with contextlib.suppress(CatalogUnavailable):
                await self.catalog.run(self.catalog.release, doc_id, self.owner)
        self.jobs.running.clear()
        for pump in self._pumps.values():
            await pump.stop()
        self._pumps.clear()
        self.parsing.close()
        self.preparing.close()

    # -- claiming and leases ------------------------------------------------------------------------
    async def _claim_loop(self) -> None:
        while True:
            await self._free.acquire()
            try:
                claimed = await self.catalog.run(self.catalog.claim, self.owner, self.s.ingest_lease_s, 1)
                if not claimed and (coll := await self._claim_collection()) is not None:
                    self._spawn(self._run_collection(coll))
                    continue
            except CatalogUnavailable as exc:
                log.warning("cannot claim jobs: %s", exc.message)
                claimed = []
            if not claimed:
                self._free.release()
                self.jobs.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.jobs.wake.wait(), self.s.ingest_poll_s)
                continue
            self._spawn(traces.job(self._run(claimed[0]), claimed[0]))

    async def _claim_collection(self) -> Collection | None:
        return await self.catalog.run(self.catalog.claim_collection, self.owner, self.s.ingest_lease_s)

    async def _run_collection(self, coll: Collection) -> None:
        INGEST_CLAIMS.labels("collection").inc()
        try:
            await purge_collection(self.jobs, coll)
        except CatalogUnavailable as exc:
            log.warning("catalog unavailable: the collection's deletion resumes once its lease ends (%s)", exc.message)
        except Exception:  # never let one deletion kill a slot; the lease runs out and it is claimed again
            log.exception("deletion of collection %s crashed", coll.name)
        finally:
            self._free.release()

    def _spawn(self, step: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeat(self) -> None:
        """Renews this process's leases; a job whose lease is gone is `lost`. A process that cannot reach the
        catalog for two thirds of a lease gives up all of its jobs before anyone can take them over."""
        while True:
            await asyncio.sleep(self.s.ingest_lease_s / 3)
            try:
                held = await self.catalog.run(self.catalog.renew, self.owner, self.s.ingest_lease_s)
            except CatalogUnavailable as exc:
                if time.monotonic() - self.last_heartbeat > self.s.ingest_lease_s * 2 / 3:
                    log.warning("catalog unreachable past the lease: stopping every job (%s)", exc.message)
                    self.jobs.lost.update(self.jobs.running)
                continue
            self.last_heartbeat = time.monotonic()
            self.jobs.lost.update(self.jobs.running - held.keys())

    async def _stopped(self, doc_id: str) -> Exception:
        """Why a fenced write did not land: the row left its job (cancelled) or another process holds it."""
        return stop_reason(await self.catalog.run(self.catalog.get_document, doc_id), self.owner) or JobCancelled()

    async def _stage(self, doc_id: str, stage: DocumentStatus, **fields: Any) -> None:
        if doc_id in self.jobs.lost:
            raise LeaseLost
        if not await self.catalog.run(self.catalog.set_stage, doc_id, stage, self.owner, **fields):
            raise await self._stopped(doc_id)

    # -- scheduling ---------------------------------------------------------------------------------
    async def _run(self, doc: dict[str, Any]) -> None:
        doc_id = doc["id"]
        self.jobs.running.add(doc_id)
        handed_over = False
        try:
            if doc["status"] not in STAGES:  # a deletion or a failed job's points to finish
                INGEST_CLAIMS.labels("cleanup").inc()
                await self._guarded(doc_id, settle(self.jobs, doc))
                return
            INGEST_CLAIMS.labels("job" if doc["status"] == DocumentStatus.QUEUED else "resume").inc()
            prepared = await self._guarded(doc_id, self._prepare(doc))
            if prepared is not None:
                await self._budget.acquire(len(prepared.chunks))
                self._spawn(self._complete(prepared))
                handed_over = True
        finally:
            self._free.release()
            if not handed_over:
                self._end(doc_id)

    async def _complete(self, job: _Prepared) -> None:
        try:
            await self._guarded(job.doc["id"], self._finish(job))
        finally:
            self._budget.release(len(job.chunks))
            self._end(job.doc["id"])

    def _end(self, doc_id: str) -> None:
        self.jobs.running.discard(doc_id)
        self.jobs.lost.discard(doc_id)

    async def _guarded(self, doc_id: str, step: Coroutine[Any, Any, _T]) -> _T | None:
        """Runs one step of a job; every failure ends as the document's `failed` state with its reason, except
        losing the job (lease or catalog gone: whoever holds it next resumes it)."""
        try:
            return await step
        except LeaseLost:
            log.warning("lease lost: another process resumes the job", extra={"fields": {"document_id": doc_id}})
        except CatalogUnavailable as exc:
            log.warning("catalog unavailable: the job resumes once its lease ends (%s)", exc.message)
        except JobCancelled:
            await self._after_cancel(doc_id)
        except (DomainError, StoreError) as exc:  # parsing, embedding identity, upstream: the reason is shown
            await self._fail(doc_id, getattr(exc, "message", str(exc)))
        except asyncio.CancelledError:
            raise
        except Exception:  # never let one document kill a slot
            log.exception("ingestion of %s crashed", doc_id)
            await self._fail(doc_id, "internal error during ingestion (see the backend log)")
        return None

    def _embedding(self, doc_id: str, fn: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
        return self.retrier.call(doc_id, self.embedder_outage, fn)

    def _storing(self, doc_id: str, fn: Callable[[], Awaitable[_T]]) -> Awaitable[_T]:
        return self.retrier.call(doc_id, self.store_outage, fn)

    # -- the steps ----------------------------------------------------------------------------------
    async def _prepare(self, doc: dict[str, Any]) -> _Prepared:
        doc_id, collection = doc["id"], doc["collection"]
        if doc["attempts"] > MAX_ATTEMPTS:
            raise ParseError(f"gave up after {MAX_ATTEMPTS} attempts: the process running it stopped every time")
        start = time.perf_counter()
        await self._stage(doc_id, DocumentStatus.PARSING, progress=0.02)
        data = await self.catalog.run(self.catalog.read_upload, doc_id)
        if data is None:
            raise ParseError("the upload is no longer stored; upload the file again")
        parsed = await self.parsing.run(parse_isolated, data, doc["format"], ParseLimits.from_settings(self.s))
        pages = max((s.page or 0 for s in parsed.sections), default=0) or None
        traces.stage("parse", start, bytes=len(data), pages=pages or 0)
        whole = await self.parsing.run(parsed.text)  # what chunk offsets index (up to MAX_UPLOAD_MB: off the loop)
        if not await self.catalog.run(self.catalog.store_text, doc_id, self.owner, whole):
            raise await self._stopped(doc_id)

        await self._stage(doc_id, DocumentStatus.CHUNKING, progress=0.08, title=parsed.title, pages=pages)
        chunked = time.perf_counter()
        chunks = await self.parsing.run(self.chunker.chunk, parsed)
        traces.stage("chunk", chunked, chunks=len(chunks))
        if not chunks:
            raise ParseError("no text to index after chunking")
        digest = chunks_sha(chunks)
        resume_from = 0
        if doc["has_points"]:  # a job taken over: keep what the stopped run stored if it is the same chunking
            if doc["chunks_sha"] == digest and doc["chunks"] == len(chunks):
                resume_from = doc["chunks_done"]
                INGEST_RESUMED.inc(resume_from)
                fields = {"document_id": doc_id, "from_chunk": resume_from, "chunks": len(chunks)}
                log.info("resumed", extra={"fields": fields})
            else:
                await self._storing(doc_id, lambda: delete_points(self.jobs, doc))

        coll = await self.catalog.run(self.catalog.get_collection, collection)
        bound = coll.embed_key if coll else None
        if bound:  # the model the collection was created with (or first indexed with)
            identity = await self._embedding(doc_id, lambda: bound_identity(self.embedder, collection, bound))
        else:  # unbound: ml-api's default binds it now
            identity = await self._embedding(doc_id, self.embedder.identity)
        space = space_for(identity)
        await self._storing(doc_id, lambda: self.store.ensure_space(space, identity.dim))
        coll = await self.catalog.run(self.catalog.bind_collection, collection, identity.key, space)
        check_identity(collection, coll.embed_key, identity)  # a concurrent job may have bound it first
        await self._stage(
            doc_id, DocumentStatus.EMBEDDING, progress=0.1 + 0.85 * resume_from / len(chunks), chunks=len(chunks),
            chunks_done=resume_from, chunks_sha=digest, has_points=1,
        )  # fmt: skip
        return _Prepared(doc, parsed.title, chunks, space, identity.model, start, resume_from)

    async def _finish(self, job: _Prepared) -> None:
        doc_id, collection = job.doc["id"], job.doc["collection"]
        await self._embed_and_upsert(job)

        indexed = time.perf_counter()
        await self._stage(doc_id, DocumentStatus.INDEXING, progress=0.97)
        stored = await self._storing(doc_id, lambda: self.store.count(job.space, collection, doc_id))
        if stored != len(job.chunks):
            raise StoreError(f"store holds {stored} of {len(job.chunks)} chunks after indexing")
        traces.stage("index", indexed, points=stored)
        publishing = time.perf_counter()
        replaced = await self.catalog.run(self.catalog.publish, doc_id, collection, self.owner)
        traces.stage("publish", publishing, replaced=len(replaced or ()))
        if replaced is None:
            raise await self._stopped(doc_id)
        INGEST_CHUNKS.inc(len(job.chunks) - job.resume_from)
        INGEST_FINISHED.labels("ready").inc()  # the upload stays: GET .../content serves it until deletion
        for old_id in replaced:
            if old := await self.catalog.run(self.catalog.get_document, old_id):
                await purge_now(self.jobs, old)
        seconds = round(time.perf_counter() - job.started, 3)
        log.info("indexed", extra={"fields": {"document_id": doc_id, "chunks": len(job.chunks), "seconds": seconds}})

    def pump(self, model: str) -> EmbedPump:
        """One pump per embedding model (a request goes to one model); EMBED_CONCURRENCY bounds them together."""
        if (pump := self._pumps.get(model)) is None:
            pump = self._pumps[model] = EmbedPump(self.embedder, self.s.embed_batch_size, self._pump_slots, model)
            pump.start()
        return pump

    async def _embed_and_upsert(self, job: _Prepared) -> None:
        """Hands batches to the pump (which fills ml-api requests across documents); upserts as they land and
        records the prefix of chunks whose batches are all stored (what a takeover resumes from)."""
        doc, chunks = job.doc, job.chunks
        doc_id = doc["id"]
        size = self.s.embed_batch_size
        starts = list(range(job.resume_from, len(chunks), size))
        gate = asyncio.Semaphore(self.s.embed_concurrency)
        stored: set[int] = set()
        prefix = job.resume_from
        stop = False

        async def one(first: int) -> None:
            nonlocal prefix, stop
            batch = chunks[first : first + size]
            async with gate:
                if stop:
                    return
                current = await self.catalog.run(self.catalog.get_document, doc_id)
                gone = doc_id in self.jobs.lost or stop_reason(current, self.owner) is not None
                if gone or current["status"] != DocumentStatus.EMBEDDING:
                    stop = True
                    return
                try:
                    texts = [c.text for c in batch]
                    embedding = time.perf_counter()
                    vectors = await self._embedding(doc_id, lambda: self.pump(job.model).embed(texts))
                    traces.stage("embed batch", embedding, first_chunk=first, chunks=len(texts))
                except BaseException:
                    stop = True
                    raise
            points = await self.preparing.run(self._points, doc, job.title, batch, vectors)
            t0 = time.perf_counter()
            try:
                await self._storing(doc_id, lambda: self.store.upsert(job.space, points))
            except BaseException:
                stop = True
                raise
            STORE_LATENCY.labels("upsert").observe(time.perf_counter() - t0)
            traces.stage("index batch", t0, first_chunk=first, points=len(points))
            stored.add(first)
            if first != prefix:
                return
            while prefix in stored:
                prefix = min(prefix + size, len(chunks))
            progress = 0.1 + 0.85 * prefix / len(chunks)
            if not await self.catalog.run(
                self.catalog.set_stage, doc_id, DocumentStatus.EMBEDDING, self.owner, chunks_done=prefix,
                progress=progress,
            ):  # fmt: skip
                stop = True

        # gather, not a TaskGroup: every write finishes (or fails) before the caller cleans up, so no
        # cancelled upsert can land after the job's points were dropped.
        results = await asyncio.gather(*(one(b) for b in starts), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        if stop:
            raise await self._stopped(doc_id)

    def _points(self, doc: dict[str, Any], title: str | None, chunks: list[Chunk], vectors: Any) -> list[ChunkPoint]:
        return [self._point(doc, title, chunk, vec) for chunk, vec in zip(chunks, vectors, strict=True)]

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
            char_start=chunk.char_start,
            char_end=chunk.char_end,
        )
        point_id = str(uuid.uuid5(POINT_NAMESPACE, f"{doc['id']}:{chunk.position}"))
        return ChunkPoint(point_id, vector, indices, values, payload)

    # -- endings ------------------------------------------------------------------------------------
    async def _fail(self, doc_id: str, reason: str) -> None:
        if await self.catalog.run(
            self.catalog.fail, doc_id, reason, self.owner
        ):  # else deleted or taken over meanwhile: not its failure
            log.warning("ingestion failed", extra={"fields": {"document_id": doc_id, "reason": reason}})
            INGEST_FINISHED.labels("failed").inc()
        await self._after_cancel(doc_id)  # the upload stays: `retry` runs the job again from it

    async def _after_cancel(self, doc_id: str) -> None:
        """Removes what the job wrote (a deleted row goes whole), unless another process holds the row now."""
        doc = await self.catalog.run(self.catalog.get_document, doc_id)
        if doc is not None and doc["lease_owner"] == self.owner:
            await settle(self.jobs, doc)
