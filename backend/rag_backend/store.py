"""Vector store over Qdrant: in-process engine (qdrant-edge) or a Qdrant server, same behaviour.

A *space* is one physical Qdrant collection (server) or one edge shard (embedded). It holds a named dense
vector ``"dense"`` (cosine) and a named sparse vector ``"bm25"`` with the IDF modifier. Several logical user
collections share a space and are told apart by the payload field ``collection``; every point also carries
``document_id`` so a document can be deleted or hidden as a unit.

BM25 IDF statistics are scoped to the logical collection being searched (``SearchParams.idf`` with a corpus
filter), so one tenant's vocabulary never changes another tenant's scores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

__all__ = [
    "ChunkPoint",
    "DimensionMismatch",
    "EdgeStore",
    "Hit",
    "QdrantServerStore",
    "SearchFilter",
    "SearchRequest",
    "StoreError",
    "VectorStore",
    "open_store",
]

logger = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
_SPACE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_T = TypeVar("_T")


class StoreError(RuntimeError):
    """The store is unreachable or misconfigured; the message says what and where."""


class DimensionMismatch(StoreError):
    """A space exists with another dense dimension than the one asked for."""


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    """One chunk to index: dense + BM25 sparse vectors and its payload."""

    id: str  # UUID string
    dense: Sequence[float]  # list[float] or 1-D numpy float32 array
    sparse_indices: Sequence[int]
    sparse_values: Sequence[float]
    payload: dict[str, Any]  # includes "collection" and "document_id" (str) plus text, source, position...


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result; ``id`` is the canonical UUID string."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Which points of a space a search may return."""

    collection: str
    exclude_document_ids: Sequence[str] = ()  # documents not yet visible (being indexed / replaced / deleted)
    document_ids: Sequence[str] = ()  # if non-empty: only these documents
    sources: Sequence[str] = ()  # if non-empty: only payload["source"] in these


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """One query of a batch: dense (cosine) or BM25 sparse."""

    using: Literal["dense", "bm25"]
    dense: Sequence[float] | None = None  # for using="dense"
    sparse: tuple[Sequence[int], Sequence[float]] | None = None  # (indices, values) for using="bm25"
    limit: int = 10
    filter: SearchFilter | None = None  # required in practice


@runtime_checkable
class VectorStore(Protocol):
    """What the rest of the backend codes against; both implementations behave identically."""

    kind: str  # "qdrant-edge" or "qdrant"

    async def ensure_space(self, space: str, dim: int) -> None: ...

    async def upsert(self, space: str, points: Sequence[ChunkPoint]) -> None: ...

    async def search_batch(self, space: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]: ...

    async def delete_document(self, space: str, collection: str, document_id: str) -> None: ...

    async def delete_collection(self, space: str, collection: str) -> None: ...

    async def count(self, space: str, collection: str, document_id: str | None = None) -> int: ...

    async def health(self) -> tuple[bool, str]: ...

    async def close(self) -> None: ...


def open_store(
    *, qdrant_url: str | None, qdrant_api_key: str | None, data_dir: str | Path, timeout_s: float = 10.0
) -> VectorStore:
    """A Qdrant server store when a URL is configured, else the embedded engine under ``<data_dir>/qdrant``."""
    if qdrant_url:
        return QdrantServerStore.from_url(qdrant_url, api_key=qdrant_api_key, timeout=timeout_s)
    return EdgeStore(Path(data_dir) / "qdrant")


# --------------------------------------------------------------------------------------------------------------
# Validation and conversion shared by both stores
# --------------------------------------------------------------------------------------------------------------


def _check_space(space: str) -> None:
    """Space names become directory / collection names, so keep them to a safe alphabet."""
    if not isinstance(space, str) or _SPACE_RE.fullmatch(space) is None:
        raise ValueError(f"invalid space name {space!r}: expected 1-64 characters of [A-Za-z0-9_-]")


def _check_dim(dim: int) -> None:
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ValueError(f"invalid dense dimension {dim!r}: expected a positive int")


def _floats(values: Sequence[float]) -> list[float]:
    """Plain Python floats (numpy arrays included) for both engines' converters."""
    tolist = getattr(values, "tolist", None)
    return [float(v) for v in (tolist() if tolist is not None else values)]


def _ints(values: Sequence[int]) -> list[int]:
    tolist = getattr(values, "tolist", None)
    return [int(v) for v in (tolist() if tolist is not None else values)]


@dataclass(frozen=True, slots=True)
class _Point:
    """A validated, engine-neutral point."""

    id: str
    dense: list[float]
    sparse_indices: list[int]
    sparse_values: list[float]
    payload: dict[str, Any]


def _prepare_points(space: str, dim: int, points: Sequence[ChunkPoint]) -> list[_Point]:
    """Validate ids, dims and the payload keys every other module relies on, before anything is written."""
    out: list[_Point] = []
    for p in points:
        try:
            pid = str(uuid.UUID(str(p.id)))
        except ValueError:
            raise ValueError(f"point id {p.id!r} is not a UUID string") from None
        dense = _floats(p.dense)
        if len(dense) != dim:
            raise DimensionMismatch(f"point {pid}: dense vector has dim {len(dense)}, space {space!r} has dim {dim}")
        indices, values = _ints(p.sparse_indices), _floats(p.sparse_values)
        if len(indices) != len(values):
            raise ValueError(f"point {pid}: {len(indices)} sparse indices but {len(values)} values")
        for key in ("collection", "document_id"):
            if not isinstance(p.payload.get(key), str):
                raise ValueError(f"point {pid}: payload[{key!r}] must be a str")
        out.append(_Point(pid, dense, indices, values, dict(p.payload)))
    return out


@dataclass(frozen=True, slots=True)
class _Query:
    """A validated, engine-neutral query; ``None`` in a batch means "answer []" (e.g. no BM25 tokens)."""

    using: Literal["dense", "bm25"]
    dense: list[float] | None
    sparse: tuple[list[int], list[float]] | None
    limit: int
    filter: SearchFilter | None


def _prepare_queries(space: str, dim: int | None, requests: Sequence[SearchRequest]) -> list[_Query | None]:
    out: list[_Query | None] = []
    for r in requests:
        if r.limit < 1:
            raise ValueError(f"search limit must be >= 1, got {r.limit}")
        if r.using == DENSE:
            if r.dense is None:
                raise ValueError("using='dense' needs a dense query vector")
            dense = _floats(r.dense)
            if dim is not None and len(dense) != dim:
                raise DimensionMismatch(f"dense query has dim {len(dense)}, space {space!r} has dim {dim}")
            out.append(_Query(DENSE, dense, None, r.limit, r.filter))
        elif r.using == SPARSE:
            if r.sparse is None:
                raise ValueError("using='bm25' needs a sparse query (indices, values)")
            indices, values = _ints(r.sparse[0]), _floats(r.sparse[1])
            if len(indices) != len(values):
                raise ValueError(f"sparse query has {len(indices)} indices but {len(values)} values")
            out.append(_Query(SPARSE, None, (indices, values), r.limit, r.filter) if indices else None)
        else:
            raise ValueError(f"unknown vector {r.using!r}: expected 'dense' or 'bm25'")
    return out


def _scatter(queries: list[_Query | None], results: list[list[Hit]]) -> list[list[Hit]]:
    """Put the results of the non-empty queries back at their positions; empty ones get []."""
    it = iter(results)
    return [next(it) if q is not None else [] for q in queries]


# --------------------------------------------------------------------------------------------------------------
# Embedded engine: qdrant-edge
# --------------------------------------------------------------------------------------------------------------


def _edge_collection_filter(collection: str, document_id: str | None = None) -> qe.Filter:
    must: list[qe.FieldCondition] = [qe.FieldCondition("collection", match=qe.MatchValue(collection))]
    if document_id is not None:
        must.append(qe.FieldCondition("document_id", match=qe.MatchValue(document_id)))
    return qe.Filter(must=list(must))


def _edge_search_filter(f: SearchFilter) -> qe.Filter:
    must: list[Any] = [qe.FieldCondition("collection", match=qe.MatchValue(f.collection))]
    if f.document_ids:
        must.append(qe.FieldCondition("document_id", match=qe.MatchAny(list(f.document_ids))))
    if f.sources:
        must.append(qe.FieldCondition("source", match=qe.MatchAny(list(f.sources))))
    must_not: list[Any] = []
    if f.exclude_document_ids:
        must_not.append(qe.FieldCondition("document_id", match=qe.MatchAny(list(f.exclude_document_ids))))
    return qe.Filter(must=must, must_not=must_not or None)


def _edge_query(q: _Query) -> qe.QueryRequest:
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
    # IDF over the searched logical collection only, not the whole shard (see module docstring).
    params = (
        qe.SearchParams(idf=qe.IdfParams(corpus=_edge_collection_filter(q.filter.collection))) if q.filter else None
    )
    return qe.QueryRequest(
        limit=q.limit,
        query=qe.Query.Nearest(qe.SparseVector(q.sparse[0], q.sparse[1]), using=SPARSE),
        filter=flt,
        params=params,
        with_payload=True,
        with_vector=False,
    )


def _edge_points(points: Sequence[_Point]) -> list[qe.Point]:
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

    Edge calls are synchronous and run in worker threads. Note: qdrant-edge-py 0.9 keeps the GIL during its calls
    (optimize included), so a long optimize still stalls the event loop even from a thread; chunked upserts and
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

    @property
    def data_dir(self) -> Path:
        return self._dir

    # -- plumbing ------------------------------------------------------------------------------------------------

    async def _run(self, what: str, space: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run an edge call in a thread; tracked so ``close()`` never closes a shard under a running call."""
        if self._closed:
            raise StoreError(f"qdrant-edge store at {self._dir} is closed ({what} on space {space!r})")
        inner = asyncio.ensure_future(asyncio.to_thread(fn, *args))
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
            if "collection" not in existing:
                tenant = qe.KeywordIndexParams(is_tenant=True)
                shard.update(qe.UpdateOperation.create_field_index("collection", tenant))
            if "document_id" not in existing:
                shard.update(qe.UpdateOperation.create_field_index("document_id", qe.PayloadSchemaType.Keyword))
        except BaseException:
            shard.close()
            raise
        return shard

    async def _get(self, space: str, create_dim: int | None = None) -> _EdgeSpace | None:
        """The open space; loads it from disk, or creates it when ``create_dim`` is given; None if unknown."""
        _check_space(space)
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
        _check_dim(dim)
        s = await self._get(space, create_dim=dim)
        assert s is not None
        if s.dim != dim:
            raise DimensionMismatch(f"space {space!r} at {s.path} has dense dim {s.dim}, not {dim}")

    async def upsert(self, space: str, points: Sequence[ChunkPoint]) -> None:
        s = await self._get(space)
        if s is None:
            raise StoreError(f"space {space!r} does not exist under {self._dir}; call ensure_space first")
        prepared = _prepare_points(space, s.dim, points)
        for i in range(0, len(prepared), self._UPSERT_CHUNK):
            chunk = prepared[i : i + self._UPSERT_CHUNK]
            await self._run("upsert", space, _edge_upsert, s.shard, chunk)
        if prepared:
            self._note_writes(s, len(prepared))

    async def search_batch(self, space: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        s = await self._get(space)
        queries = _prepare_queries(space, s.dim if s else None, requests)
        todo = [q for q in queries if q is not None]
        if s is None or not todo:
            return [[] for _ in queries]
        batch = qe.QueryBatchRequest([_edge_query(q) for q in todo])
        raw = await self._run("search", space, s.shard.query_batch, batch)
        results = [[Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in r] for r in raw]
        return _scatter(queries, results)

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
                    await asyncio.to_thread(_edge_close, s.shard)
                except Exception as exc:
                    errors.append(f"{s.path}: {exc}")
            self._spaces.clear()
        if errors:
            raise StoreError("closing qdrant-edge shards failed: " + "; ".join(errors))


def _edge_upsert(shard: qe.EdgeShard, points: Sequence[_Point]) -> None:
    shard.update(qe.UpdateOperation.upsert_points(_edge_points(points)))


def _edge_close(shard: qe.EdgeShard) -> None:
    shard.flush()
    shard.close()


def _consume_exception(fut: asyncio.Future[Any]) -> None:
    """Mark a background future's exception as seen; whoever awaits it still gets it."""
    if not fut.cancelled():
        fut.exception()


# --------------------------------------------------------------------------------------------------------------
# Qdrant server (or qdrant-client's local mode standing in for one)
# --------------------------------------------------------------------------------------------------------------


def _server_collection_filter(collection: str, document_id: str | None = None) -> models.Filter:
    must: list[models.Condition] = [models.FieldCondition(key="collection", match=models.MatchValue(value=collection))]
    if document_id is not None:
        must.append(models.FieldCondition(key="document_id", match=models.MatchValue(value=document_id)))
    return models.Filter(must=must)


def _server_search_filter(f: SearchFilter) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key="collection", match=models.MatchValue(value=f.collection))
    ]
    if f.document_ids:
        must.append(models.FieldCondition(key="document_id", match=models.MatchAny(any=list(f.document_ids))))
    if f.sources:
        must.append(models.FieldCondition(key="source", match=models.MatchAny(any=list(f.sources))))
    must_not: list[models.Condition] = []
    if f.exclude_document_ids:
        must_not.append(
            models.FieldCondition(key="document_id", match=models.MatchAny(any=list(f.exclude_document_ids)))
        )
    return models.Filter(must=must, must_not=must_not or None)


def _server_query(q: _Query, collection_idf: bool) -> models.QueryRequest:
    flt = _server_search_filter(q.filter) if q.filter is not None else None
    if q.using == DENSE:
        assert q.dense is not None
        return models.QueryRequest(
            query=q.dense, using=DENSE, filter=flt, limit=q.limit, with_payload=True, with_vector=False
        )
    assert q.sparse is not None
    params = (
        models.SearchParams(idf=models.IdfCorpusParams(corpus=_server_collection_filter(q.filter.collection)))
        if q.filter is not None and collection_idf
        else None
    )
    return models.QueryRequest(
        query=models.SparseVector(indices=q.sparse[0], values=q.sparse[1]),
        using=SPARSE,
        filter=flt,
        params=params,
        limit=q.limit,
        with_payload=True,
        with_vector=False,
    )


def _server_point(p: _Point) -> models.PointStruct:
    vector: dict[str, Any] = {DENSE: p.dense}
    if p.sparse_indices:
        vector[SPARSE] = models.SparseVector(indices=p.sparse_indices, values=p.sparse_values)
    return models.PointStruct(id=p.id, vector=vector, payload=p.payload)


def _is_not_found(exc: Exception) -> bool:
    """A missing collection: 404 from a server, ValueError('... not found') from local mode."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code == 404
    return isinstance(exc, ValueError) and "not found" in str(exc).lower()


class QdrantServerStore:
    """A Qdrant server through ``AsyncQdrantClient``; one Qdrant collection per space.

    The store owns the client: ``close()`` closes it. Writes use ``wait=True`` so they are searchable on return.
    Collection-scoped BM25 IDF (``SearchParams.idf``) needs Qdrant >= 1.19; ``collection_idf=False`` falls back to
    space-wide IDF for older servers.
    """

    kind = "qdrant"
    _UPSERT_CHUNK = 256  # points per request: keeps request bodies well below the server's size limit

    def __init__(
        self, client: AsyncQdrantClient, *, health_timeout_s: float = 2.0, collection_idf: bool = True
    ) -> None:
        self._client = client
        self._health_timeout_s = health_timeout_s
        self._collection_idf = collection_idf
        opts = client.init_options
        self._local = opts.get("location") == ":memory:" or opts.get("path") is not None
        self._where = str(
            opts.get("url") or opts.get("host") or opts.get("location") or opts.get("path") or "qdrant server"
        )
        self._dims: dict[str, int] = {}  # spaces known to exist, with their dense dim

    @classmethod
    def from_url(cls, url: str, api_key: str | None = None, timeout: float = 10) -> QdrantServerStore:
        """Connect lazily (no I/O here); ``health()`` tells whether the server answers."""
        client = AsyncQdrantClient(
            url=url,
            api_key=api_key,
            timeout=max(1, math.ceil(timeout)),
            check_compatibility=False,  # would probe the server from a thread at construction; health() does it
        )
        return cls(client, health_timeout_s=min(2.0, float(timeout)))

    def _error(self, what: str, space: str, exc: BaseException) -> StoreError:
        return StoreError(f"qdrant {what} failed for collection {space!r} at {self._where}: {exc}")

    async def _space_dim(self, space: str) -> int | None:
        """Dense dim of an existing collection, None if it does not exist (cached once seen)."""
        _check_space(space)
        dim = self._dims.get(space)
        if dim is not None:
            return dim
        try:
            if not await self._client.collection_exists(space):
                return None
            info = await self._client.get_collection(space)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise self._error("get_collection", space, exc) from exc
        dim = self._dense_dim(space, info)
        self._dims[space] = dim
        return dim

    def _dense_dim(self, space: str, info: models.CollectionInfo) -> int:
        vectors = info.config.params.vectors
        sparse = info.config.params.sparse_vectors or {}
        if not isinstance(vectors, dict) or DENSE not in vectors or SPARSE not in sparse:
            raise StoreError(
                f"collection {space!r} at {self._where} exists but lacks the named vectors {DENSE!r}/{SPARSE!r}"
            )
        return int(vectors[DENSE].size)

    async def ensure_space(self, space: str, dim: int) -> None:
        _check_dim(dim)
        existing = await self._space_dim(space)
        if existing is None:
            try:
                await self._client.create_collection(
                    space,
                    vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                    sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
            except Exception as exc:
                # Lost a creation race with another process: fall through to checking what exists.
                if not (isinstance(exc, UnexpectedResponse) and exc.status_code == 409) and not (
                    isinstance(exc, ValueError) and "already exists" in str(exc)
                ):
                    raise self._error("create_collection", space, exc) from exc
            await self._create_payload_indexes(space)
            existing = await self._space_dim(space)
            if existing is None:
                raise StoreError(f"collection {space!r} at {self._where} vanished right after creation")
        if existing != dim:
            raise DimensionMismatch(f"collection {space!r} at {self._where} has dense dim {existing}, not {dim}")

    async def _create_payload_indexes(self, space: str) -> None:
        """Tenant index on ``collection`` plus a keyword index on ``document_id`` (idempotent on the server)."""
        tenant = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
        with warnings.catch_warnings():
            if self._local:  # local mode warns that payload indexes have no effect there: expected in tests
                warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
            try:
                await self._client.create_payload_index(space, "collection", field_schema=tenant, wait=True)
                await self._client.create_payload_index(
                    space, "document_id", field_schema=models.PayloadSchemaType.KEYWORD, wait=True
                )
            except Exception as exc:
                raise self._error("create_payload_index", space, exc) from exc

    async def upsert(self, space: str, points: Sequence[ChunkPoint]) -> None:
        dim = await self._space_dim(space)
        if dim is None:
            raise StoreError(f"collection {space!r} does not exist at {self._where}; call ensure_space first")
        prepared = _prepare_points(space, dim, points)
        for i in range(0, len(prepared), self._UPSERT_CHUNK):
            chunk = [_server_point(p) for p in prepared[i : i + self._UPSERT_CHUNK]]
            try:
                await self._client.upsert(space, points=chunk, wait=True)
            except Exception as exc:
                if _is_not_found(exc):
                    self._dims.pop(space, None)
                raise self._error("upsert", space, exc) from exc

    async def search_batch(self, space: str, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        dim = await self._space_dim(space)
        queries = _prepare_queries(space, dim, requests)
        todo = [q for q in queries if q is not None]
        if dim is None or not todo:
            return [[] for _ in queries]
        try:
            responses = await self._client.query_batch_points(
                space, requests=[_server_query(q, self._collection_idf) for q in todo]
            )
        except Exception as exc:
            if _is_not_found(exc):  # dropped behind our back: behave as empty, like an unknown space
                self._dims.pop(space, None)
                return [[] for _ in queries]
            raise self._error("query_batch_points", space, exc) from exc
        results = [
            [Hit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in r.points]
            for r in responses
        ]
        return _scatter(queries, results)

    async def _delete(self, what: str, space: str, flt: models.Filter) -> None:
        if await self._space_dim(space) is None:
            return
        try:
            await self._client.delete(space, points_selector=models.FilterSelector(filter=flt), wait=True)
        except Exception as exc:
            if _is_not_found(exc):
                self._dims.pop(space, None)
                return
            raise self._error(what, space, exc) from exc

    async def delete_document(self, space: str, collection: str, document_id: str) -> None:
        await self._delete("delete_document", space, _server_collection_filter(collection, document_id))

    async def delete_collection(self, space: str, collection: str) -> None:
        await self._delete("delete_collection", space, _server_collection_filter(collection))

    async def count(self, space: str, collection: str, document_id: str | None = None) -> int:
        if await self._space_dim(space) is None:
            return 0
        try:
            res = await self._client.count(
                space, count_filter=_server_collection_filter(collection, document_id), exact=True
            )
        except Exception as exc:
            if _is_not_found(exc):
                self._dims.pop(space, None)
                return 0
            raise self._error("count", space, exc) from exc
        return int(res.count)

    async def health(self) -> tuple[bool, str]:
        """List collections (cheap, and checks the API key too) under a short timeout; never raises."""
        try:
            res = await asyncio.wait_for(self._client.get_collections(), timeout=self._health_timeout_s)
        except TimeoutError:
            return False, f"qdrant at {self._where} did not answer within {self._health_timeout_s:g}s"
        except UnexpectedResponse as exc:  # reachable but refusing, e.g. a wrong API key
            return False, f"qdrant at {self._where} answered HTTP {exc.status_code} {exc.reason_phrase}"
        except Exception as exc:
            detail = getattr(exc, "source", None) or exc  # ResponseHandlingException wraps the transport error
            return False, f"qdrant at {self._where} unreachable: {type(detail).__name__}: {detail}"
        mode = "local mode" if self._local else "server"
        return True, f"qdrant {mode} at {self._where}, {len(res.collections)} collection(s)"

    async def close(self) -> None:
        await self._client.close()
