"""The embedded engine: qdrant-edge, one shard per space under ``<data_dir>/<space>/``, in this process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from rag_backend.pools import Pool
from rag_backend.store.base import (
    COLLECTION_FIELD,
    DENSE,
    DOCUMENT_FIELD,
    SOURCE_FIELD,
    SPARSE,
    ChunkPoint,
    DimensionMismatch,
    Hit,
    PreparedPoint,
    PreparedQuery,
    SearchFilter,
    SearchRequest,
    StoreError,
    check_dim,
    check_space,
    prepare_points,
    prepare_queries,
    scatter,
    to_hit,
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
STORE_THREADS = 4  # searches of concurrent queries and ingestion upserts; the engine serialises what it must


def _edge_collection_filter(collection: str, document_id: str | None = None) -> qe.Filter:
    must: list[qe.FieldCondition] = [qe.FieldCondition(COLLECTION_FIELD, match=qe.MatchValue(collection))]
    if document_id is not None:
        must.append(qe.FieldCondition(DOCUMENT_FIELD, match=qe.MatchValue(document_id)))
    return qe.Filter(must=list(must))


def _edge_collections(names: Sequence[str]) -> qe.FieldCondition:
    """The tenant condition: one collection (the tenant index's fast path) or any of several."""
    match = qe.MatchValue(names[0]) if len(names) == 1 else qe.MatchAny(list(names))
    return qe.FieldCondition(COLLECTION_FIELD, match=match)


def _edge_search_filter(f: SearchFilter) -> qe.Filter:
    must: list[Any] = [_edge_collections(f.names)]
    if f.document_ids:
        must.append(qe.FieldCondition(DOCUMENT_FIELD, match=qe.MatchAny(list(f.document_ids))))
    if f.sources:
        must.append(qe.FieldCondition(SOURCE_FIELD, match=qe.MatchAny(list(f.sources))))
    must_not: list[Any] = []
    if f.exclude_document_ids:
        must_not.append(qe.FieldCondition(DOCUMENT_FIELD, match=qe.MatchAny(list(f.exclude_document_ids))))
    return qe.Filter(must=must, must_not=must_not or None)


def _edge_query(q: PreparedQuery) -> qe.QueryRequest:
    flt = _edge_search_filter(q.filter) if q.filter is not None else None
    if q.using == DENSE:
        assert q.dense is not None
        return qe.QueryRequest(
            limit=q.limit,
            query=qe.Query.Nearest(q.dense, using=DENSE),
            filter=flt,
            with_payload=True,
            with_vector=False,
        )
    assert q.sparse is not None
    # IDF over the searched collections only, not the whole shard (see base's docstring): a collection outside
    # the set, one the caller may not read included, changes no score.
    params = None
    if q.filter is not None:
        params = qe.SearchParams(idf=qe.IdfParams(corpus=qe.Filter(must=[_edge_collections(q.filter.names)])))
    return qe.QueryRequest(
        limit=q.limit,
        query=qe.Query.Nearest(qe.SparseVector(q.sparse[0], q.sparse[1]), using=SPARSE),
        filter=flt,
        params=params,
        with_payload=True,
        with_vector=False,
    )


def _edge_points(points: Sequence[PreparedPoint]) -> list[qe.Point]:
    out: list[qe.Point] = []
    for p in points:
        vector: dict[str, Any] = {DENSE: p.dense}
        if p.sparse_indices:  # a chunk without BM25 tokens simply has no sparse vector
            vector[SPARSE] = qe.SparseVector(p.sparse_indices, p.sparse_values)
        out.append(qe.Point(p.id, vector, p.payload))
    return out


@dataclass(eq=False)
class _EdgeSpace:
    """One open shard plus its optimizer bookkeeping."""

    name: str
    path: Path
    shard: qe.EdgeShard
    dim: int
    pending: int = 0  # points written since the last optimize started
    last_write: float = 0.0  # loop time of the last write, for debouncing
    auto_task: asyncio.Task[None] | None = None  # debounce timer that ends by starting an optimize
    opt_task: asyncio.Task[bool] | None = None  # the one running optimize of this space


class EdgeStore:
    """The Qdrant engine in-process: one ``EdgeShard`` per space under ``<data_dir>/<space>/``.

    Edge calls are synchronous and run in the store's own bounded pool of threads (never the loop's default
    executor, which parsing or the catalog could otherwise fill). Note: qdrant-edge-py 0.9 keeps the GIL during its
    calls (optimize included), so a long optimize still stalls the event loop even from a thread; chunked upserts and
    a debounced, rare optimize keep those stalls short and infrequent.

    Edge shards do not build HNSW indexes by themselves, so the store runs ``shard.optimize()`` in the background
    once ``optimize_after_points`` points were written to a space since its last optimize (0 disables that),
    after ``optimize_debounce_s`` without writes (at most ``optimize_max_delay_s`` after it became due).
    ``indexing_threshold_kb`` overrides Qdrant's segment size above which optimize builds HNSW (default 10 MB of
    vectors); tests lower it to index a few thousand points.
    """

    kind = "qdrant-edge"
    _UPSERT_CHUNK = 512  # points per engine call: bounds how long one call holds the GIL

    def __init__(
        self,
        data_dir: str | Path,
        *,
        optimize_after_points: int = 20_000,
        optimize_debounce_s: float = 2.0,
        optimize_max_delay_s: float = 30.0,
        indexing_threshold_kb: int | None = None,
    ) -> None:
        self._dir = Path(data_dir)
        self._optimize_after = optimize_after_points
        self._debounce_s = optimize_debounce_s
        self._max_delay_s = optimize_max_delay_s
        self._indexing_threshold_kb = indexing_threshold_kb
        self._spaces: dict[str, _EdgeSpace] = {}
        self._open_lock = asyncio.Lock()
        self._inflight: set[asyncio.Future[Any]] = set()
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._pool = Pool("store", STORE_THREADS)

    @property
    def data_dir(self) -> Path:
        return self._dir

    # -- plumbing ------------------------------------------------------------------------------------------------

    async def _run(self, what: str, space: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run an edge call in a thread; tracked so ``close()`` never closes a shard under a running call."""
        if self._closed:
            raise StoreError(f"qdrant-edge store at {self._dir} is closed ({what} on space {space!r})")
        inner = asyncio.ensure_future(self._pool.run(fn, *args))
        self._inflight.add(inner)
        inner.add_done_callback(self._inflight.discard)
        inner.add_done_callback(_consume_exception)
        try:
            # Shielded: a cancelled caller must not make us forget a thread that is still using the shard.
            return await asyncio.shield(inner)
        except (StoreError, ValueError):
            raise
        except Exception as exc:
            raise StoreError(f"qdrant-edge {what} failed for space {space!r} at {self._dir / space}: {exc}") from exc

    def _edge_config(self, dim: int | None) -> qe.EdgeConfig | None:
        optimizers = (
            qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_threshold_kb)
            if self._indexing_threshold_kb is not None
            else None
        )
        if dim is None:  # loading: vectors come from the shard, only override what we set explicitly
            return qe.EdgeConfig(optimizers=optimizers) if optimizers is not None else None
        return qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            optimizers=optimizers,
        )

    @staticmethod
    def _has_shard(path: Path) -> bool:
        return (path / "edge_config.json").is_file() or (path / "segments").is_dir()

    def _create_shard(self, path: Path, dim: int) -> qe.EdgeShard:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create qdrant-edge shard directory {path}: {exc}") from exc
        config = self._edge_config(dim)
        assert config is not None
        return self._with_payload_indexes(qe.EdgeShard.create(str(path), config))

    def _load_shard(self, path: Path) -> tuple[qe.EdgeShard, int]:
        config_file = path / "edge_config.json"
        try:
            config = json.loads(config_file.read_text())
            dim = int(config["vectors"][DENSE]["size"])
            if SPARSE not in config.get("sparse_vectors", {}):
                raise KeyError(SPARSE)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"{path} is not a shard of this store (unreadable {config_file.name} or no "
                f"{DENSE!r}/{SPARSE!r} vectors): {exc!r}"
            ) from exc
        return self._with_payload_indexes(qe.EdgeShard.load(str(path), self._edge_config(None))), dim

    @staticmethod
    def _with_payload_indexes(shard: qe.EdgeShard) -> qe.EdgeShard:
        """Tenant index on ``collection`` and keyword index on ``document_id``; closes the shard if that fails
        so its WAL lock is not left behind."""
        try:
            existing = shard.info().payload_schema
            if COLLECTION_FIELD not in existing:
                tenant = qe.KeywordIndexParams(is_tenant=True)
                shard.update(qe.UpdateOperation.create_field_index(COLLECTION_FIELD, tenant))
            if DOCUMENT_FIELD not in existing:
                shard.update(qe.UpdateOperation.create_field_index(DOCUMENT_FIELD, qe.PayloadSchemaType.Keyword))
        except BaseException:
            shard.close()
            raise
        return shard

    async def _get(self, space: str, create_dim: int | None = None) -> _EdgeSpace | None:
        """The open space; loads it from disk, or creates it when ``create_dim`` is given; None if unknown."""
        check_space(space)
        s = self._spaces.get(space)
        if s is not None:
            return s
        async with self._open_lock:
            s = self._spaces.get(space)
            if s is not None:
                return s
            path = self._dir / space
            if self._has_shard(path):  # two stats: cheaper inline than a thread hop
                shard, dim = await self._run("load", space, self._load_shard, path)
            elif create_dim is None:
                return None
            else:
                shard, dim = await self._run("create", space, self._create_shard, path, create_dim), create_dim
            s = _EdgeSpace(name=space, path=path, shard=shard, dim=dim)
            self._spaces[space] = s
            return s

    # -- background optimize -------------------------------------------------------------------------------------

    def _note_writes(self, s: _EdgeSpace, n: int) -> None:
        s.pending += n
        s.last_write = asyncio.get_running_loop().time()
        self._maybe_schedule(s)

    def _maybe_schedule(self, s: _EdgeSpace) -> None:
        """Arm the debounce timer once enough points were written; never more than one timer/optimize per space."""
        if self._closed or self._optimize_after <= 0 or s.pending < self._optimize_after:
            return
        if (s.auto_task is not None and not s.auto_task.done()) or (s.opt_task is not None and not s.opt_task.done()):
            return  # a running optimize re-checks `pending` when it ends
        s.auto_task = asyncio.create_task(self._auto_optimize(s), name=f"edge-auto-optimize-{s.name}")

    async def _auto_optimize(self, s: _EdgeSpace) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_delay_s
        while True:  # wait for a quiet period so a bulk ingest is optimized once, not per batch
            wait = min(s.last_write + self._debounce_s, deadline) - loop.time()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        try:
            await asyncio.shield(self._start_optimize(s))
        except StoreError as exc:
            logger.warning("background optimize of space %r failed: %s", s.name, exc)

    def _start_optimize(self, s: _EdgeSpace) -> asyncio.Task[bool]:
        if s.opt_task is None or s.opt_task.done():
            s.opt_task = asyncio.create_task(self._do_optimize(s), name=f"edge-optimize-{s.name}")
            s.opt_task.add_done_callback(_consume_exception)
        return s.opt_task

    async def _do_optimize(self, s: _EdgeSpace) -> bool:
        if self._closed:
            return False
        taken, s.pending = s.pending, 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        logger.debug("optimizing space %r (%d new points)", s.name, taken)
        try:
            changed = await self._run("optimize", s.name, s.shard.optimize)
        except BaseException:
            s.pending += taken  # retried once the next write arms the timer again
            raise
        # Writes that arrived meanwhile may already be due; checked once this task is done, so never overlapping.
        loop.call_soon(self._maybe_schedule, s)
        logger.info(
            "optimized space %r (%d new points, changed=%s) in %.2fs", s.name, taken, changed, loop.time() - started
        )
        return changed

    async def optimize(self, space: str | None = None) -> bool:
        """Build indexes now (all open spaces if ``space`` is None); True if any segment changed.

        Waits for an optimize already running on the space, then runs one more so writes since it began are
        covered; the optimize itself always runs as a store task so a cancelled caller cannot overlap two.
        """
        if space is None:
            targets = list(self._spaces.values())
        else:
            s = await self._get(space)
            targets = [s] if s is not None else []
        changed = False
        for s in targets:
            running = s.opt_task
            if running is not None and not running.done():
                changed |= await asyncio.shield(running)
            changed |= await asyncio.shield(self._start_optimize(s))
        return changed

    def optimizing(self, space: str) -> bool:
        """Whether an optimize is running on the space right now (for tests and stats)."""
        s = self._spaces.get(space)
        return s is not None and s.opt_task is not None and not s.opt_task.done()

    async def info(self, space: str) -> dict[str, int] | None:
        """Shard statistics (segments, points, indexed vectors), None for an unknown space."""
        s = await self._get(space)
        if s is None:
            return None
        info = await self._run("info", space, s.shard.info)
        return {
            "dim": s.dim,
            "segments": info.segments_count,
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
        }

    # -- VectorStore ---------------------------------------------------------------------------------------------

    async def ensure_space(self, space: str, dim: int) -> None:
        check_dim(dim)
        s = await self._get(space, create_dim=dim)
        assert s is not None
        if s.dim != dim:
            raise DimensionMismatch(f"space {space!r} at {s.path} has dense dim {s.dim}, not {dim}")

    async def upsert(self, space: str, points: Sequence[ChunkPoint]) -> None:
        s = await self._get(space)
        if s is None:
            raise StoreError(f"space {space!r} does not exist under {self._dir}; call ensure_space first")
        prepared = await self._pool.run(prepare_points, space, s.dim, points)  # validation: CPU, off the loop
        for i in range(0, len(prepared), self._UPSERT_CHUNK):
            chunk = prepared[i : i + self._UPSERT_CHUNK]
            await self._run("upsert", space, _edge_upsert, s.shard, chunk)
        if prepared:
            self._note_writes(s, len(prepared))

    async def search_batch(self, space: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        s = await self._get(space)
        queries = prepare_queries(space, s.dim if s else None, requests)
        todo = [q for q in queries if q is not None]
        if s is None or not todo:
            return [[] for _ in queries]
        batch = qe.QueryBatchRequest([_edge_query(q) for q in todo])
        raw = await self._run("search", space, s.shard.query_batch, batch)
        results = [[to_hit(p.id, p.score, p.payload) for p in r] for r in raw]
        return scatter(queries, results)

    async def delete_document(self, space: str, collection: str, document_id: str) -> None:
        s = await self._get(space)
        if s is not None:
            op = qe.UpdateOperation.delete_points_by_filter(_edge_collection_filter(collection, document_id))
            await self._run("delete_document", space, s.shard.update, op)

    async def delete_collection(self, space: str, collection: str) -> None:
        s = await self._get(space)
        if s is not None:
            op = qe.UpdateOperation.delete_points_by_filter(_edge_collection_filter(collection))
            await self._run("delete_collection", space, s.shard.update, op)

    async def count(self, space: str, collection: str, document_id: str | None = None) -> int:
        s = await self._get(space)
        if s is None:
            return 0
        req = qe.CountRequest(exact=True, filter=_edge_collection_filter(collection, document_id))
        return int(await self._run("count", space, s.shard.count, req))

    async def health(self) -> tuple[bool, str]:
        if self._closed:
            return False, f"qdrant-edge store at {self._dir} is closed"
        try:
            probe = self._dir if self._dir.exists() else self._dir.parent
            if not os.access(probe, os.W_OK):
                return False, f"qdrant-edge data directory {probe} is not writable"
        except OSError as exc:
            return False, f"qdrant-edge data directory {self._dir}: {exc}"
        return True, f"qdrant-edge at {self._dir}, {len(self._spaces)} space(s) open"

    async def close(self) -> None:
        """Wait for a running optimize and in-flight calls, then flush and close every shard. Idempotent."""
        if self._close_task is None:
            self._closed = True
            self._close_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        for s in self._spaces.values():
            if s.auto_task is not None:
                s.auto_task.cancel()  # only a debounce timer; a started optimize is its own task
        running = [s.opt_task for s in self._spaces.values() if s.opt_task is not None]
        await asyncio.gather(*running, return_exceptions=True)
        async with self._open_lock:  # no shard is half-opened while we close
            await asyncio.gather(*list(self._inflight), return_exceptions=True)
            errors: list[str] = []
            for s in self._spaces.values():
                try:
                    await self._pool.run(_edge_close, s.shard)
                except Exception as exc:
                    errors.append(f"{s.path}: {exc}")
            self._spaces.clear()
        self._pool.close()
        if errors:
            raise StoreError("closing qdrant-edge shards failed: " + "; ".join(errors))


def _edge_upsert(shard: qe.EdgeShard, points: Sequence[PreparedPoint]) -> None:
    shard.update(qe.UpdateOperation.upsert_points(_edge_points(points)))


def _edge_close(shard: qe.EdgeShard) -> None:
    shard.flush()
    shard.close()


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    """Mark a background future's exception as seen; whoever awaits it still gets it."""
    if not fut.cancelled():
        fut.exception()
