"""A Qdrant server through qdrant-client (or its local mode standing in for one): one collection per space."""

from __future__ import annotations

import asyncio
import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

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
CLUSTER_PARAMS = ("shard_number", "replication_factor", "write_consistency_factor")


def _server_collection_filter(collection: str, document_id: str | None = None) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key=COLLECTION_FIELD, match=models.MatchValue(value=collection))
    ]
    if document_id is not None:
        must.append(models.FieldCondition(key=DOCUMENT_FIELD, match=models.MatchValue(value=document_id)))
    return models.Filter(must=must)


def _server_collections(names: Sequence[str]) -> models.FieldCondition:
    """The tenant condition: one collection (the tenant index's fast path) or any of several."""
    match = models.MatchValue(value=names[0]) if len(names) == 1 else models.MatchAny(any=list(names))
    return models.FieldCondition(key=COLLECTION_FIELD, match=match)


def _server_search_filter(f: SearchFilter) -> models.Filter:
    must: list[models.Condition] = [_server_collections(f.names)]
    if f.document_ids:
        must.append(models.FieldCondition(key=DOCUMENT_FIELD, match=models.MatchAny(any=list(f.document_ids))))
    if f.sources:
        must.append(models.FieldCondition(key=SOURCE_FIELD, match=models.MatchAny(any=list(f.sources))))
    must_not: list[models.Condition] = []
    if f.exclude_document_ids:
        must_not.append(
            models.FieldCondition(key=DOCUMENT_FIELD, match=models.MatchAny(any=list(f.exclude_document_ids)))
        )
    return models.Filter(must=must, must_not=must_not or None)


def _server_query(q: PreparedQuery, collection_idf: bool) -> models.QueryRequest:
    flt = _server_search_filter(q.filter) if q.filter is not None else None
    if q.using == DENSE:
        assert q.dense is not None
        return models.QueryRequest(
            query=q.dense, using=DENSE, filter=flt, limit=q.limit, with_payload=True, with_vector=False
        )
    assert q.sparse is not None
    params = None
    if q.filter is not None and collection_idf:  # IDF over the searched collections only (see base's docstring)
        corpus = models.Filter(must=[_server_collections(q.filter.names)])
        params = models.SearchParams(idf=models.IdfCorpusParams(corpus=corpus))
    return models.QueryRequest(
        query=models.SparseVector(indices=q.sparse[0], values=q.sparse[1]),
        using=SPARSE,
        filter=flt,
        params=params,
        limit=q.limit,
        with_payload=True,
        with_vector=False,
    )


def _server_point(p: PreparedPoint) -> models.PointStruct:
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

    On a cluster: ``shard_number``, ``replication_factor`` and ``write_consistency_factor`` (None: the server's
    default, not sent) apply to the collections this store creates; an existing collection keeps its own and a
    mismatch is logged once. Qdrant sends a write to every active replica of the shard and, with ``wait=True``,
    answers once all of them have replied, failing unless ``write_consistency_factor`` succeeded and deactivating
    the replicas that failed. So a write that returned is visible to the default read consistency (one replica
    per shard) and the exact ``count`` that ingestion checks after its upserts sees every chunk; no read
    consistency is set. ``count(exact=True)`` fans out to every shard and sums exact per-shard counts (the
    approximate count would estimate from the payload index). Writes keep the default (weak) ordering: each
    process awaits its writes one after another, and two processes write the same points only when a job's lease
    moved mid-job, and then identical points (ids derive from document and position), so no order between them
    matters and routing every write through a shard leader would only add a hop.
    """

    kind = "qdrant"
    _UPSERT_CHUNK = 256  # points per request: keeps request bodies well below the server's size limit

    def __init__(
        self,
        client: AsyncQdrantClient,
        *,
        health_timeout_s: float = 2.0,
        collection_idf: bool = True,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
    ) -> None:
        given = dict(zip(CLUSTER_PARAMS, (shard_number, replication_factor, write_consistency_factor), strict=True))
        for name, value in given.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"invalid {name} {value!r}: expected a positive int or None")
        if write_consistency_factor and replication_factor and write_consistency_factor > replication_factor:
            # Qdrant would silently cap it at the replica count: refuse the contradiction instead.
            raise ValueError(
                f"write_consistency_factor {write_consistency_factor} exceeds replication_factor {replication_factor}"
            )
        self._cluster = {name: value for name, value in given.items() if value is not None}
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
    def from_url(
        cls,
        url: str,
        api_key: str | None = None,
        timeout: float = 10,
        *,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
    ) -> QdrantServerStore:
        """Connect lazily (no I/O here); ``health()`` tells whether the server answers.

        The cluster settings apply to collections this store creates (None: the server's default).
        """
        client = AsyncQdrantClient(
            url=url,
            api_key=api_key,
            timeout=max(1, math.ceil(timeout)),
            check_compatibility=False,  # would probe the server from a thread at construction; health() does it
        )
        return cls(
            client,
            health_timeout_s=min(2.0, float(timeout)),
            shard_number=shard_number,
            replication_factor=replication_factor,
            write_consistency_factor=write_consistency_factor,
        )

    def _error(self, what: str, space: str, exc: BaseException) -> StoreError:
        return StoreError(f"qdrant {what} failed for collection {space!r} at {self._where}: {exc}")

    async def _space_dim(self, space: str) -> int | None:
        """Dense dim of an existing collection, None if it does not exist (cached once seen)."""
        check_space(space)
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
        self._warn_cluster_mismatch(space, info)
        self._dims[space] = dim
        return dim

    def _warn_cluster_mismatch(self, space: str, info: models.CollectionInfo) -> None:
        """Settings only shape new collections: say so when an existing one differs (once per space and client)."""
        params = info.config.params
        differs = {
            name: getattr(params, name, None)
            for name, wanted in self._cluster.items()
            if getattr(params, name, None) not in (None, wanted)
        }
        if differs:
            have = ", ".join(f"{name}={value}" for name, value in differs.items())
            want = ", ".join(f"{name}={self._cluster[name]}" for name in differs)
            logger.warning(
                "qdrant collection %r at %s has %s, not the configured %s: the settings apply to new collections "
                "only (change an existing one with Qdrant's collection update and shard APIs)",
                space, self._where, have, want,
            )  # fmt: skip

    def _dense_dim(self, space: str, info: models.CollectionInfo) -> int:
        vectors = info.config.params.vectors
        sparse = info.config.params.sparse_vectors or {}
        if not isinstance(vectors, dict) or DENSE not in vectors or SPARSE not in sparse:
            raise StoreError(
                f"collection {space!r} at {self._where} exists but lacks the named vectors {DENSE!r}/{SPARSE!r}"
            )
        return int(vectors[DENSE].size)

    async def ensure_space(self, space: str, dim: int) -> None:
        check_dim(dim)
        existing = await self._space_dim(space)
        if existing is None:
            try:
                await self._client.create_collection(
                    space,
                    vectors_config={DENSE: models.VectorParams(size=dim, distance=models.Distance.COSINE)},
                    sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                    **self._cluster,  # only those configured: the client leaves unset ones out of the request
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
                await self._client.create_payload_index(space, COLLECTION_FIELD, field_schema=tenant, wait=True)
                await self._client.create_payload_index(
                    space, DOCUMENT_FIELD, field_schema=models.PayloadSchemaType.KEYWORD, wait=True
                )
            except Exception as exc:
                raise self._error("create_payload_index", space, exc) from exc

    async def upsert(self, space: str, points: Sequence[ChunkPoint]) -> None:
        dim = await self._space_dim(space)
        if dim is None:
            raise StoreError(f"collection {space!r} does not exist at {self._where}; call ensure_space first")
        prepared = prepare_points(space, dim, points)
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
        queries = prepare_queries(space, dim, requests)
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
        results = [[to_hit(p.id, p.score, p.payload) for p in r.points] for r in responses]
        return scatter(queries, results)

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
