"""HTTP routes: thin, they validate and hand over to ingestion / retrieval."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse, Response

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
from rag_backend.retrieval import QueryParams, gather_health

router = APIRouter()


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
@router.post("/api/query", response_model=QueryResponse, tags=["query"])
async def query(request: Request, body: QueryRequest) -> Any:
    svc = services(request)
    s = svc.settings
    filters = body.filters.model_dump(exclude_none=True) if body.filters else {}
    params = QueryParams(
        query=body.query,
        collection=body.collection or s.default_collection,
        top_k=body.top_k or s.default_top_k,
        dense=body.dense,
        sparse=body.sparse,
        rerank=body.rerank,
        candidates=body.candidates,
        filters=filters,
    )
    return JSONResponse(await svc.retriever.search(params))


# -- operations -------------------------------------------------------------------------------------
@router.get("/health", tags=["operations"])
async def health() -> dict[str, str]:
    """Liveness: the process answers. Readiness of the parts is /ready."""
    return {"status": "ok"}


@router.get("/ready", tags=["operations"])
async def ready(request: Request) -> Response:
    """ml-api, store and cache, each reported; 503 unless the query path works, `degraded` without cache."""
    svc = services(request)
    checks = {
        "embeddings": svc.embedder.health(),
        "reranker": svc.reranker.health(),
        "store": svc.store.health(),
        "cache": svc.cache.health(),
    }
    results = await gather_health(checks)
    components = {
        name: {"ok": ok, "detail": detail, "kind": _kind(svc, name)} for name, (ok, detail) in results.items()
    }
    essential = all(results[n][0] for n in ("embeddings", "reranker", "store"))
    status = "ready" if essential and results["cache"][0] else ("degraded" if essential else "unavailable")
    body = {"status": status, "components": components}
    return JSONResponse(body, status_code=200 if essential else 503)


def _kind(svc: Any, name: str) -> str:
    return {
        "embeddings": svc.settings.embed_provider,
        "reranker": "ml-api",
        "store": svc.store.kind,
        "cache": svc.cache.kind,
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
