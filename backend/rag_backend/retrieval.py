"""Query path: resolve the target collections → embed (cached, once per model) → dense + BM25 search per space,
restricted to the targets inside the store query → RRF → rerank → cache.

A query searches a set of collections: those it names, or every collection the caller can read; any it names that
does not exist or that it may not read is the same NotFound, so the answer never tells the two apart. The set is
part of the store query (never a post-filter of a top-k) and of every cache key. Collections of different
embedding models live in different spaces: each space is searched with the query embedded by its own model and the
rankings of all spaces are fused into one.

Fusion is done here rather than in Qdrant so that both stores (embedded engine and server) fuse
identically and each stage can be switched off per request. The whole path runs under QUERY_TIMEOUT_S: past it
the outstanding upstream calls are cancelled (ml-api drops their queued items) and the caller learns which stage
was cut short, instead of the work piling up behind a client that has given up.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from rag_backend import traces
from rag_backend.cache import Cache, digest
from rag_backend.catalog import Catalog, Collection
from rag_backend.core import tracing
from rag_backend.core.config import Settings
from rag_backend.core.metrics import STORE_LATENCY
from rag_backend.embedding import Embedder, EmbedIdentity, bound_identity
from rag_backend.errors import DeadlineExceeded, InvalidInput, NotFound
from rag_backend.lexical import Lexical
from rag_backend.reranking import Reranker
from rag_backend.store import ChunkPayload, Hit, SearchFilter, SearchRequest, VectorStore


@dataclass(slots=True)
class QueryParams:
    query: str
    collections: tuple[str, ...] | None  # the names asked for; None: every collection `readable` allows
    top_k: int
    dense: bool = True
    sparse: bool = True
    rerank: bool = True
    candidates: int | None = None
    filters: dict[str, list[str]] = field(default_factory=dict)
    rerank_model: str | None = None  # a served reranker's name; None: QUERY_RERANK_MODEL, else ml-api's default
    readable: frozenset[str] | None = None  # what the caller may read (None: no restriction)
    targets: tuple[str, ...] = ()  # set by `search`: the collections searched, sorted (the answer cache keys on it)

    def cache_part(self) -> dict[str, Any]:
        return {
            "q": self.query, "k": self.top_k, "d": self.dense, "s": self.sparse, "r": self.rerank,
            "c": self.candidates, "f": self.filters, "rm": self.rerank_model,
        }  # fmt: skip


def rrf(rankings: list[list[Hit]], k: int) -> list[tuple[Hit, float]]:
    """Reciprocal rank fusion: sum of 1/(k + rank) over the lists each hit appears in (rank from 1)."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (k + rank)
            first.setdefault(hit.id, hit)
    order = sorted(scores, key=lambda i: scores[i], reverse=True)
    return [(first[i], scores[i]) for i in order]


@dataclass(slots=True)
class Progress:
    """Where a query is, for the message of a query that runs out of time."""

    stage: str = "starting"


class Retriever:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: VectorStore,
        embedder: Embedder,
        reranker: Reranker,
        lexical: Lexical,
        cache: Cache,
    ) -> None:
        self.s = settings
        self.catalog, self.store, self.embedder, self.reranker, self.lexical, self.cache = (
            catalog, store, embedder, reranker, lexical, cache,
        )  # fmt: skip

    async def query_embedding(self, identity: EmbedIdentity, text: str) -> np.ndarray:
        key = f"emb:{identity.key}:{digest(text)}"
        if (hit := await self.cache.get("embedding", key)) is not None and len(hit) == 4 * identity.dim:
            return np.frombuffer(hit, dtype=np.float32)
        vector = (await self.embedder.embed([text], model=identity.model, retry_read_timeout=False))[0]
        await self.cache.set("embedding", key, vector.astype(np.float32).tobytes(), self.s.cache_ttl_embedding_s)
        return vector

    async def search(self, p: QueryParams) -> dict[str, Any]:
        """`_search` under the query's deadline (QUERY_TIMEOUT_S); past it, DeadlineExceeded naming the stage."""
        progress = Progress()
        limit = self.s.query_timeout_s
        timer = asyncio.timeout(limit)
        try:
            async with timer:
                return await self._search(p, progress)
        except TimeoutError:
            if not timer.expired():
                raise  # a library's own timeout, not our deadline
            raise DeadlineExceeded(
                f"query did not finish within QUERY_TIMEOUT_S={limit:g}s (stopped while {progress.stage}); its "
                "remaining work was cancelled: ask for fewer candidates or raise QUERY_TIMEOUT_S"
            ) from None

    async def targets(self, p: QueryParams) -> list[Collection]:
        """The live collections the query searches: those it names (each readable and existing, else NotFound, the
        same for both), or every readable one. Sets `p.targets`."""
        found = await self.catalog.run(self.catalog.live_collections, p.collections)
        if p.readable is not None:
            found = [c for c in found if c.name in p.readable]
        if p.collections is not None:
            have = {c.name for c in found}
            if missing := next((n for n in p.collections if n not in have), None):
                raise NotFound(f"collection '{missing}' does not exist")
        p.targets = tuple(sorted(c.name for c in found))
        return found

    async def _search(self, p: QueryParams, progress: Progress) -> dict[str, Any]:
        t0 = time.perf_counter()
        if not (p.dense or p.sparse):
            raise InvalidInput("at least one of dense and sparse retrieval must be on")
        found = await self.targets(p)
        if p.rerank:  # an unknown name is refused before any work, and the cache key holds the one that ranks
            p.rerank_model = await self.reranker.resolve(p.rerank_model)
        # Every target with its version and model: a change to any of them, or another target set (another
        # caller's readable set), is another entry; one caller's results never answer a caller who may not read them.
        scope = sorted((c.name, c.version, c.embed_key) for c in found)
        retrieval_key = f"ret:{digest(scope)}:{digest(p.cache_part())}"
        if (cached := await self.cache.get("retrieval", retrieval_key)) is not None:
            body = orjson.loads(cached)
            body["cached"] = True
            body["timings"] = {"total_ms": _ms(t0)}
            return body

        timings: dict[str, float] = {}
        spaces: dict[tuple[str, str], list[str]] = {}  # (space, embed_key) -> its targets; unbound ones hold nothing
        for c in found:
            if c.embed_key and c.space:
                spaces.setdefault((c.space, c.embed_key), []).append(c.name)
        results = await self._retrieve(p, spaces, timings, progress) if spaces else []
        body = {"results": results, "timings": timings, "cached": False}
        await self.cache.set("retrieval", retrieval_key, orjson.dumps(body), self.s.cache_ttl_retrieval_s)
        timings["total_ms"] = _ms(t0)
        return body

    async def _embed(
        self, p: QueryParams, spaces: dict[tuple[str, str], list[str]], progress: Progress
    ) -> dict[str, np.ndarray]:
        """The query's vector per embedding model of the targets (each model once, in parallel), by embed_key."""
        progress.stage = "resolving the embedding model"
        identities: dict[str, EmbedIdentity] = {}
        for (_, key), names in spaces.items():
            if key not in identities:
                identities[key] = await bound_identity(self.embedder, names[0], key)
        progress.stage = "embedding the query"
        with tracing.span("query embedding", {"models": len(identities)}):
            vectors = await asyncio.gather(*(self.query_embedding(i, p.query) for i in identities.values()))
        return dict(zip(identities, vectors, strict=True))

    async def _retrieve(
        self,
        p: QueryParams,
        spaces: dict[tuple[str, str], list[str]],
        timings: dict[str, float],
        progress: Progress,
    ) -> list[dict[str, Any]]:
        pool = max(p.top_k, p.candidates or self.s.rerank_candidates) if p.rerank else p.top_k
        hidden = await self.catalog.run(self.catalog.hidden_ids, *p.targets)
        t = time.perf_counter()
        vectors = await self._embed(p, spaces, progress) if p.dense else {}
        if vectors:
            timings["embed_ms"] = _ms(t)
        t = time.perf_counter()
        sparse = self.lexical.query(p.query) if p.sparse else None
        if sparse is not None:
            traces.stage("bm25 query", t)
        batches: list[tuple[str, list[SearchRequest]]] = []
        for (space, key), names in spaces.items():
            flt = SearchFilter(  # the target set is part of the engine's query: nothing outside it is ranked
                collections=names,
                exclude_document_ids=hidden,
                document_ids=p.filters.get("document_id", ()),
                sources=p.filters.get("source", ()),
            )
            requests: list[SearchRequest] = []
            if key in vectors:
                requests.append(SearchRequest(using="dense", dense=vectors[key].tolist(), limit=pool, filter=flt))
            if sparse is not None:
                requests.append(SearchRequest(using="bm25", sparse=sparse, limit=pool, filter=flt))
            batches.append((space, requests))
        t = time.perf_counter()
        progress.stage = "searching the store"
        per_space = await asyncio.gather(*(self.store.search_batch(space, reqs) for space, reqs in batches))
        rankings = [ranking for space_rankings in per_space for ranking in space_rankings]
        timings["search_ms"] = _ms(t)
        # dense and BM25: one round trip per space, the spaces in parallel
        traces.stage("search", t, using=[r.using for _, reqs in batches for r in reqs], limit=pool, spaces=len(batches))
        STORE_LATENCY.labels("search").observe(timings["search_ms"] / 1000)

        t = time.perf_counter()
        if len(rankings) == 1:
            fused = [(h, h.score) for h in rankings[0]]
        else:
            fused = rrf(rankings, self.s.rrf_k)
        fused = fused[:pool]
        traces.stage("fusion", t, rankings=len(rankings), candidates=len(fused))
        rerank_scores: list[float | None] = [None] * len(fused)
        if p.rerank and fused:
            t = time.perf_counter()
            progress.stage = f"reranking {len(fused)} candidates"
            with tracing.span("rerank", {"candidates": len(fused)}):
                texts = [h.payload.get("text", "") for h, _ in fused]
                scores = await self.reranker.scores(p.query, texts, p.rerank_model)
            timings["rerank_ms"] = _ms(t)
            order = sorted(range(len(fused)), key=lambda i: scores[i], reverse=True)
            fused = [fused[i] for i in order]
            rerank_scores = [scores[i] for i in order]
        return [_result(h, score, rs) for (h, score), rs in zip(fused[: p.top_k], rerank_scores, strict=False)]


def _result(hit: Hit, score: float, rerank_score: float | None) -> dict[str, Any]:
    """A hit as the API shows it: its score(s) and the chunk payload ingestion wrote (`ChunkPayload`)."""
    pl: ChunkPayload = hit.payload
    return {
        "id": hit.id,
        "text": pl.get("text", ""),
        "score": round(float(score), 6),
        "rerank_score": None if rerank_score is None else round(float(rerank_score), 6),
        "collection": pl.get("collection"),
        "document_id": pl.get("document_id"),
        "source": pl.get("source"),
        "title": pl.get("title"),
        "position": pl.get("position"),
        "page": pl.get("page"),
        "heading": pl.get("heading"),
        "char_start": pl.get("char_start"),
        "char_end": pl.get("char_end"),
    }


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)
