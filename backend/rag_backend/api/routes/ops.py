"""Operations: liveness (/health), readiness (/ready), build and tuning facts (/info), Prometheus (/metrics)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, PlainTextResponse, Response

from rag_backend import __version__, readiness
from rag_backend.api.deps import CatalogDep, ServicesDep
from rag_backend.api.responses import raises
from rag_backend.api.schemas import ReadyReport
from rag_backend.api.wire import key_matches
from rag_backend.catalog import CatalogUnavailable, DocumentStatus
from rag_backend.core.metrics import INGEST_JOBS
from rag_backend.redaction import Sensitive

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Readiness of the parts is /ready."""
    return {"status": "ok"}


@router.get(
    "/ready",
    response_model=ReadyReport,
    responses={503: {"model": ReadyReport, "description": "The query path does not work: see the components"}},
)
async def ready(request: Request, svc: ServicesDep) -> JSONResponse:
    """The catalog, ml-api (one embedding, one rerank pair, with the backend's key), a store search and a cache
    write+read, each reported; 503 unless the query path works, `degraded` without cache. Only a caller holding
    API_KEY sees endpoints and paths: everyone else (everyone, when no API_KEY is set) sees the statuses and reasons
    with URLs and paths redacted; keys and passwords are never shown."""
    s = svc.settings
    recent = getattr(request.app.state, "ready_recent", None)
    if recent is None:
        recent = request.app.state.ready_recent = readiness.Recent()
    result = await readiness.check(
        svc.embedder, svc.reranker, svc.store, svc.cache, svc.chain, svc.catalog, s.ready_timeout_s, recent
    )
    sensitive = Sensitive.of(s)
    hide = not (s.api_key and key_matches(dict(request.scope["headers"]), s.api_key))
    components = {
        name: asdict(c) | {"detail": sensitive.hide(c.detail, places=hide)} for name, c in result.components.items()
    }
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
        "retrieval": {
            "top_k": s.default_top_k,
            "rerank_candidates": s.rerank_candidates,
            "rrf_k": s.rrf_k,
            "query_timeout_s": s.query_timeout_s,
        },
    }


@router.get("/metrics", response_class=PlainTextResponse, responses=raises(CatalogUnavailable))
async def metrics(catalog: CatalogDep) -> Response:
    counts = await catalog.run(catalog.counts_by_status)
    for status in DocumentStatus:
        INGEST_JOBS.labels(status.value).set(counts.get(status, 0))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
