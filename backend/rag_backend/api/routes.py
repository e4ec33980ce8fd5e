"""HTTP routes: thin, they validate and hand over to ingestion / retrieval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response, StreamingResponse

from rag_backend import __version__
from rag_backend.api.schemas import (
    CollectionCreate,
    CollectionInfo,
    Document,
    DocumentList,
    QueryRequest,
    QueryResponse,
    Status,
    UploadResponse,
    check_collection_name,
)
from rag_backend.core.errors import APIError, BadRequest, Conflict, NotFound, Unsupported
from rag_backend.core.metrics import INGEST_JOBS
from rag_backend.retrieval import QueryParams

router = APIRouter()
log = logging.getLogger("rag_backend.api")


def services(request: Request) -> Any:
    return request.app.state.services


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "job_id": row["id"]}


# -- documents --------------------------------------------------------------------------------------
@router.post("/api/documents", status_code=202, response_model=UploadResponse, tags=["documents"])
async def upload(request: Request) -> Any:
    """Multipart upload: one or more `files` fields, optional `collection` field. 202: one job per file."""
    svc = services(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise Unsupported("upload as multipart/form-data with one or more 'files' fields (curl -F files=@doc.pdf)")
    limit = svc.settings.max_files_per_upload
    async with request.form(max_files=limit, max_fields=20) as form:
        collection = form.get("collection") or svc.settings.default_collection
        if not isinstance(collection, str):
            raise BadRequest("'collection' must be a text field")
        try:
            check_collection_name(collection)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        files = [f for f in form.getlist("files") + form.getlist("file") if isinstance(f, UploadFile)]
        if not files:
            raise BadRequest("no files: send one or more multipart fields named 'files'")
        items, errors = [], []
        for f in files:
            data = await f.read()
            try:
                doc = svc.ingestion.submit(collection, f.filename, data, f.content_type)
            except APIError as exc:
                errors.append(exc)
                items.append(
                    {
                        "filename": f.filename or "",
                        "status": "rejected",
                        "error": exc.message,
                        "error_type": exc.error_type,
                    }
                )
                continue
            items.append({**_doc(doc), "filename": doc["filename"]})
    if len(errors) == len(items):  # nothing accepted: the request as a whole failed, say why for each
        first = errors[0]
        first.message = "; ".join(e.message for e in errors)
        raise first
    return {"documents": items}


@router.get("/api/documents", response_model=DocumentList, tags=["documents"])
async def list_documents(
    request: Request,
    collection: str | None = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    rows, total = services(request).catalog.list_documents(collection, status, limit, offset)
    return {"documents": [_doc(r) for r in rows], "total": total}


@router.get("/api/documents/{doc_id}", response_model=Document, tags=["documents"])
async def get_document(request: Request, doc_id: str) -> Any:
    doc = services(request).catalog.get_document(doc_id)
    if doc is None or doc["status"] == "deleting":
        raise NotFound(f"document {doc_id} not found")
    return _doc(doc)


@router.delete("/api/documents/{doc_id}", tags=["documents"])
async def delete_document(request: Request, doc_id: str) -> Any:
    """Hidden from queries at once; its points are removed before this returns (or when its job stops)."""
    doc = await services(request).ingestion.delete_document(doc_id)
    if doc is None:
        raise NotFound(f"document {doc_id} not found")
    return {"id": doc_id, "deleted": True}


# -- collections ------------------------------------------------------------------------------------
def _collection(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "embed_model": row.get("embed_key")}


@router.get("/api/collections", response_model=list[CollectionInfo], tags=["collections"])
async def list_collections(request: Request) -> Any:
    return [_collection(r) for r in services(request).catalog.list_collections()]


@router.post("/api/collections", status_code=201, response_model=CollectionInfo, tags=["collections"])
async def create_collection(request: Request, body: CollectionCreate) -> Any:
    catalog = services(request).catalog
    _, created = catalog.create_collection(body.name)
    if not created:
        raise Conflict(f"collection '{body.name}' already exists")
    return next(_collection(r) for r in catalog.list_collections() if r["name"] == body.name)


@router.delete("/api/collections/{name}", tags=["collections"])
async def delete_collection(request: Request, name: str) -> Any:
    svc = services(request)
    if svc.catalog.get_collection(name) is None:
        raise NotFound(f"collection '{name}' does not exist")
    await svc.ingestion.delete_collection(name)
    return {"name": name, "deleted": True}


# -- query ------------------------------------------------------------------------------------------
def _params(svc: Any, body: QueryRequest) -> QueryParams:
    s = svc.settings
    return QueryParams(
        query=body.query,
        collection=body.collection or s.default_collection,
        top_k=body.top_k or s.default_top_k,
        dense=body.dense,
        sparse=body.sparse,
        rerank=body.rerank,
        candidates=body.candidates,
        filters=body.filters.model_dump(exclude_none=True) if body.filters else {},
    )


@router.post("/api/query", response_model=QueryResponse, tags=["query"])
async def query(request: Request, body: QueryRequest) -> Any:
    """Retrieval; with `"generate": true` also an answer whose [n] markers cite the results."""
    svc = services(request)
    out = await svc.retriever.search(_params(svc, body))
    if body.generate:
        answer = await svc.answerer.answer(body.query, out["results"])
        out["answer"] = answer.pop("answer")
        out["citations"] = answer.pop("citations", [])
        out["timings"]["generate_ms"] = answer.pop("generate_ms")
        out["llm"] = answer
    return JSONResponse(out)


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.post("/api/query/stream", tags=["query"], response_class=StreamingResponse)
async def query_stream(request: Request, body: QueryRequest) -> StreamingResponse:
    """Server-Sent Events: `results`, then `token`s and `citations` (with `"generate": true`), then `done`.

    Errors before the stream starts (unknown collection, ml-api down) are ordinary JSON errors; a failure
    after it started is an `error` event. A client that disconnects stops the generation.
    """
    svc = services(request)
    out = await svc.retriever.search(_params(svc, body))

    async def events() -> AsyncIterator[bytes]:
        yield _sse("results", {"results": out["results"], "cached": out["cached"]})
        timings = out["timings"]
        try:
            if body.generate:
                async for kind, data in svc.answerer.stream(body.query, out["results"]):
                    if kind == "done":
                        timings["generate_ms"] = data.pop("generate_ms")
                        data["timings"] = timings
                        data["retrieval_cached"] = out["cached"]
                    yield _sse(kind, data)
            else:
                yield _sse("done", {"timings": timings, "retrieval_cached": out["cached"]})
        except Exception as exc:  # the status line is gone: report in-band
            log.exception("stream failed")
            yield _sse("error", {"error": f"internal error: {type(exc).__name__}", "error_type": "internal"})

    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/api/ai/health", tags=["query"])
async def ai_health(request: Request) -> dict[str, Any]:
    """Each LLM provider of the chain: reachability, configured model, circuit state."""
    chain = services(request).chain
    providers = await chain.health()
    return {"providers": providers, "fallback": "extractive", "configured": [p["provider"] for p in providers]}


# -- operations -------------------------------------------------------------------------------------
@router.get("/health", tags=["operations"])
async def health() -> dict[str, str]:
    """Liveness: the process answers. Readiness of the parts is /ready."""
    return {"status": "ok"}


@router.get("/ready", tags=["operations"])
async def ready(request: Request) -> Response:
    """ml-api, store and cache, each reported; 503 unless the query path works, `degraded` without cache."""
    svc = services(request)
    embeddings = asyncio.ensure_future(svc.embedder.health())
    same_service = svc.settings.embed_provider == "ml-api" and svc.embedder.url == svc.reranker.url
    checks = {
        "embeddings": embeddings,
        # One ml-api /health (a forward pass of both models) answers for both when they are the same service.
        "reranker": embeddings if same_service else svc.reranker.health(),
        "store": svc.store.health(),
        "cache": svc.cache.health(),
        "llm": _llm_health(svc),
    }
    results = await gather_health(checks)
    components = {
        name: {"ok": ok, "detail": detail, "kind": _kind(svc, name)} for name, (ok, detail) in results.items()
    }
    essential = all(results[n][0] for n in ("embeddings", "reranker", "store"))
    status = "ready" if essential and results["cache"][0] else ("degraded" if essential else "unavailable")
    body = {"status": status, "components": components}
    return JSONResponse(body, status_code=200 if essential else 503)


async def gather_health(checks: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    """Runs the checks at once; one that raises reports (False, its error) instead of failing /ready."""
    names = list(checks)
    outcomes = await asyncio.gather(*(checks[n] for n in names), return_exceptions=True)
    return {
        name: (False, f"{type(o).__name__}: {o}") if isinstance(o, BaseException) else o
        for name, o in zip(names, outcomes, strict=True)
    }


async def _llm_health(svc: Any) -> tuple[bool, str]:
    """Not essential: without a provider answers are extractive, which /ready reports but does not fail on."""
    if not svc.chain.providers:
        return True, "no provider configured: extractive answers"
    providers = await svc.chain.health()
    up = [p["provider"] for p in providers if p["reachable"]]
    if up:
        return True, "reachable: " + ", ".join(up)
    return False, "; ".join(f"{p['provider']}: {p['detail']}" for p in providers) + " (answers are extractive)"


def _kind(svc: Any, name: str) -> str:
    return {
        "embeddings": svc.settings.embed_provider,
        "reranker": "ml-api",
        "store": svc.store.kind,
        "cache": svc.cache.kind,
        "llm": ",".join(p.name for p in svc.chain.providers) or "extractive",
    }[name]


@router.get("/info", tags=["operations"])
async def info(request: Request) -> dict[str, Any]:
    svc = services(request)
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


@router.get("/metrics", tags=["operations"])
async def metrics(request: Request) -> Response:
    counts = services(request).catalog.counts_by_status()
    for stage in ("queued", "parsing", "chunking", "embedding", "indexing", "ready", "failed", "deleting"):
        INGEST_JOBS.labels(stage).set(counts.get(stage, 0))
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
