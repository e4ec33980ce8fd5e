"""/api/query (JSON), /api/query/stream (Server-Sent Events) and /api/ai/health (the LLM chain)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, StreamingResponse

from rag_backend.access.model import READ
from rag_backend.api.deps import AccessDep, AnswererDep, ChainDep, PrincipalDep, RetrieverDep, SettingsDep
from rag_backend.api.errors import classify, sensitive_of
from rag_backend.api.responses import raises
from rag_backend.api.schemas import QueryRequest, QueryResponse
from rag_backend.catalog import CatalogUnavailable
from rag_backend.core.config import Settings
from rag_backend.errors import Conflict, DeadlineExceeded, InvalidInput, NotFound, UpstreamError, UpstreamUnavailable
from rag_backend.retrieval import QueryParams
from rag_backend.store import StoreError

router = APIRouter(tags=["query"])
log = logging.getLogger("rag_backend.api")

# What retrieval lets through (the LLM chain falls back down to extractive answers instead of failing).
RETRIEVAL = raises(
    InvalidInput, NotFound, Conflict, UpstreamError, UpstreamUnavailable, StoreError, CatalogUnavailable,
    DeadlineExceeded,
)  # fmt: skip
# Before Open API 3.2's itemSchema, a text/event-stream `schema` describes each event (as Schemathesis reads it).
EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["results", "token", "citations", "done", "error"]},
        "data": {
            "type": "string",
            "description": "JSON: results {results, cached}; token {text}; citations {citations}; done {timings, "
            "retrieval_cached; with generate: answer, provider, model, cached, fallbacks}; error {error, error_type}",
        },
    },
}
EVENTS = {
    "description": "Server-Sent Events: results, then with generate token... and citations, then done (or error)",
    "content": {"text/event-stream": {"schema": EVENT}},
}


def query_params(settings: Settings, body: QueryRequest) -> QueryParams:
    """The request with the configured defaults filled in: what retrieval (and its cache key) sees."""
    return QueryParams(
        query=body.query,
        collection=body.collection or settings.default_collection,
        top_k=body.top_k or settings.default_top_k,
        dense=body.dense,
        sparse=body.sparse,
        rerank=body.rerank,
        candidates=body.candidates,
        filters=body.filters.model_dump(exclude_none=True) if body.filters else {},
        rerank_model=body.rerank_model,
    )


@router.post("/api/query", response_model=QueryResponse, responses=RETRIEVAL)
async def query(
    body: QueryRequest,
    settings: SettingsDep,
    retriever: RetrieverDep,
    answerer: AnswererDep,
    access: AccessDep,
    who: PrincipalDep,
) -> JSONResponse:
    """Retrieval; with `"generate": true` also an answer whose [n] markers cite the results."""
    params = query_params(settings, body)
    await access.check(who, params.collection, READ)  # a collection the caller cannot read: 404, like a missing one
    out = await retriever.search(params)
    if body.generate:
        answer = await answerer.answer(body.query, out["results"])
        out["answer"] = answer.pop("answer")
        out["citations"] = answer.pop("citations", [])
        out["timings"]["generate_ms"] = answer.pop("generate_ms")
        out["llm"] = answer
    return JSONResponse(out)


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.post("/api/query/stream", response_class=StreamingResponse, responses={200: EVENTS, **RETRIEVAL})
async def query_stream(
    request: Request,
    body: QueryRequest,
    settings: SettingsDep,
    retriever: RetrieverDep,
    answerer: AnswererDep,
    access: AccessDep,
    who: PrincipalDep,
) -> StreamingResponse:
    """Server-Sent Events: `results`, then `token`s and `citations` (with `"generate": true`), then `done`.

    Errors before the stream starts (unknown collection, ml-api down) are ordinary JSON errors; a failure
    after it started is an `error` event with the same error_type. A client that disconnects stops the generation.
    """
    params = query_params(settings, body)
    await access.check(who, params.collection, READ)
    out = await retriever.search(params)

    async def events() -> AsyncIterator[bytes]:
        yield sse("results", {"results": out["results"], "cached": out["cached"]})
        timings = out["timings"]
        try:
            if body.generate:
                async for kind, data in answerer.stream(body.query, out["results"]):
                    if kind == "done":
                        timings["generate_ms"] = data.pop("generate_ms")
                        data["timings"] = timings
                        data["retrieval_cached"] = out["cached"]
                    yield sse(kind, data)
            else:
                yield sse("done", {"timings": timings, "retrieval_cached": out["cached"]})
        except Exception as exc:  # the status line is gone: report in-band
            log.exception("stream failed")
            mapped = classify(exc, sensitive_of(request))
            yield sse("error", {"error": mapped.message, "error_type": mapped.error_type})

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/api/ai/health")
async def ai_health(chain: ChainDep) -> dict[str, Any]:
    """Each LLM provider of the chain: reachability, configured model, circuit state."""
    providers = await chain.health()
    return {"providers": providers, "fallback": "extractive", "configured": [p["provider"] for p in providers]}
