"""Operations: liveness (/health), readiness (/ready), build and tuning facts (/info), Prometheus (/metrics)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from rag_backend import __version__, readiness
from rag_backend.api.deps import CatalogDep, ServicesDep
from rag_backend.catalog import DocumentStatus
from rag_backend.core.metrics import INGEST_JOBS

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Readiness of the parts is /ready."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(svc: ServicesDep) -> JSONResponse:
    """ml-api, store and cache, each reported; 503 unless the query path works, `degraded` without cache."""
    result = await readiness.check(svc.embedder, svc.reranker, svc.store, svc.cache, svc.chain)
    components = {name: asdict(c) for name, c in result.components.items()}
    body = {"status": result.status, "components": components}
    return JSONResponse(body, status_code=200 if result.serving else 503)


@router.get("/info")
async def info(svc: ServicesDep) -> dict[str, Any]:
    s = svc.settings
    return {
        "version": __version__,
        "store": svc.store.kind,
        "cache": svc.cache.kind,
        "embed_provider": s.embed_provider,
        "chunking": {
            "tokenizer": getattr(svc.chunker.tokenizer, "name", "?"),
            "chunk_tokens": s.chunk_tokens,
            "overlap_tokens": s.chunk_overlap_tokens,
        },
        "retrieval": {"top_k": s.default_top_k, "rerank_candidates": s.rerank_candidates, "rrf_k": s.rrf_k},
    }


@router.get("/metrics")
async def metrics(catalog: CatalogDep) -> Response:
    counts = catalog.counts_by_status()
    for status in DocumentStatus:
        INGEST_JOBS.labels(status.value).set(counts.get(status, 0))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
