"""/api/query (JSON), /api/query/stream (Server-Sent Events) and /api/ai/health (the LLM chain)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, StreamingResponse

from rag_backend.api.deps import AnswererDep, ChainDep, PrincipalDep, ReadableDep, RetrieverDep, SettingsDep
from rag_backend.api.errors import classify, sensitive_of
from rag_backend.api.responses import raises
from rag_backend.api.routes.conversations import ConversationsDep, owner_key
from rag_backend.api.schemas import QueryRequest, QueryResponse
from rag_backend.catalog import CatalogUnavailable
from rag_backend.conversations.service import Conversations, Turning
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
            "description": "JSON: results {results, cached, search_query, conversation_id, message_id}; token {text}; "
            "citations {citations}; done {timings, retrieval_cached, search_query, conversation_id, message_id; with "
            "generate: answer, provider, model, cached, fallbacks}; error {error, error_type}. With a conversation, "
            "message_id is the answer's id, kept (with the question) when done is sent",
        },
    },
}
EVENTS = {
    "description": "Server-Sent Events: results, then with generate token... and citations, then done (or error)",
    "content": {"text/event-stream": {"schema": EVENT}},
}


def query_params(
    settings: Settings, body: QueryRequest, readable: frozenset[str] | None, search_query: str
) -> QueryParams:
    """The request with the configured defaults and the caller's readable collections filled in: what retrieval
    (and its cache keys) sees. Retrieval resolves the targets: the named ones, or every readable one. `search_query`:
    the question, or a follow-up rewritten from its conversation (the retrieval cache keys on it)."""
    return QueryParams(
        query=search_query,
        collections=body.targets(),
        readable=readable,
        top_k=body.top_k or settings.default_top_k,
        dense=body.dense,
        sparse=body.sparse,
        rerank=body.rerank,
        candidates=body.candidates,
        filters=body.filters.model_dump(exclude_none=True) if body.filters else {},
        rerank_model=body.rerank_model,
    )


async def begin(body: QueryRequest, who: Any, conversations: Conversations) -> Turning | None:
    """With a conversation: NotFound unless it is the caller's (before any work), then the follow-up's search query."""
    if body.conversation_id is None:
        return None
    return await conversations.begin(owner_key(who), body.conversation_id, body.query)


def turn_fields(turn: Turning | None, query: str) -> dict[str, Any]:
    return {
        "search_query": turn.search_query if turn else query,
        "conversation_id": turn.conversation_id if turn else None,
        "message_id": turn.message_id if turn else None,
    }


@router.post("/api/query", response_model=QueryResponse, responses=RETRIEVAL)
async def query(
    body: QueryRequest,
    settings: SettingsDep,
    retriever: RetrieverDep,
    answerer: AnswererDep,
    readable: ReadableDep,
    who: PrincipalDep,
    conversations: ConversationsDep,
) -> JSONResponse:
    """Retrieval over `collections` (default: every collection the caller can read); with `"generate": true` also
    an answer whose [n] markers cite the results. With `conversation_id`, the turn is kept in the conversation."""
    turn = await begin(body, who, conversations)
    fields = turn_fields(turn, body.query)
    params = query_params(settings, body, readable, fields["search_query"])
    out = await retriever.search(params)
    if body.generate:
        history = turn.history if turn else []
        answer = await answerer.answer(body.query, out["results"], params.targets, history, params.query)
        out["answer"] = answer.pop("answer")
        out["citations"] = answer.pop("citations", [])
        out["timings"]["generate_ms"] = answer.pop("generate_ms")
        out["llm"] = answer
    if turn is not None:
        await conversations.finish(turn, out.get("answer") or "", out.get("citations") or [], out["results"])
    return JSONResponse({**out, **fields})


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.post("/api/query/stream", response_class=StreamingResponse, responses={200: EVENTS, **RETRIEVAL})
async def query_stream(
    request: Request,
    body: QueryRequest,
    settings: SettingsDep,
    retriever: RetrieverDep,
    answerer: AnswererDep,
    readable: ReadableDep,
    who: PrincipalDep,
    conversations: ConversationsDep,
) -> StreamingResponse:
    """Server-Sent Events: `results`, then `token`s and `citations` (with `"generate": true`), then `done`.

    Errors before the stream starts (unknown collection, ml-api down) are ordinary JSON errors; a failure
    after it started is an `error` event with the same error_type. A client that disconnects stops the generation.
    With `conversation_id`, the question and its answer are kept before `done` is sent (a stream cut short keeps
    nothing); `results` and `done` carry `search_query` and the answer's `message_id`.
    """
    turn = await begin(body, who, conversations)
    fields = turn_fields(turn, body.query)
    params = query_params(settings, body, readable, fields["search_query"])
    out = await retriever.search(params)

    async def events() -> AsyncIterator[bytes]:
        yield sse("results", {"results": out["results"], "cached": out["cached"], **fields})
        timings = out["timings"]
        try:
            if body.generate:
                history = turn.history if turn else []
                cited: list[dict[str, Any]] = []
                answering = answerer.stream(body.query, out["results"], params.targets, history, params.query)
                async for kind, data in answering:
                    if kind == "citations":
                        cited = data["citations"]
                    if kind == "done":
                        timings["generate_ms"] = data.pop("generate_ms")
                        data.update(timings=timings, retrieval_cached=out["cached"], **fields)
                        if turn is not None:
                            await conversations.finish(turn, data["answer"], cited, out["results"])
                    yield sse(kind, data)
            else:
                if turn is not None:
                    await conversations.finish(turn, "", [], out["results"])
                yield sse("done", {"timings": timings, "retrieval_cached": out["cached"], **fields})
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
