"""/api/documents: upload (one ingestion job per file), list, look up, read its parsed text and original, retry a
failed one, delete. Every route that names one document finds it through `_visible`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from rag_backend.access.model import READ, WRITE, Forbidden, Principal
from rag_backend.access.service import AccessService
from rag_backend.api import originals
from rag_backend.api.deps import AccessDep, CatalogDep, IngestionDep, PrincipalDep, SettingsDep
from rag_backend.api.errors import Mapped, classify, sensitive_of
from rag_backend.api.responses import raises
from rag_backend.api.schemas import Document, DocumentList, UploadResponse, check_collection_name
from rag_backend.api.wire import error_response
from rag_backend.catalog import COLLECTION_NAME, STAGES, Catalog, CatalogUnavailable, DocumentStatus
from rag_backend.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    TooLarge,
    UnsupportedFormat,
    UpstreamError,
    UpstreamUnavailable,
)

router = APIRouter(prefix="/api/documents", tags=["documents"])
CATALOG_DOWN = CatalogUnavailable  # every route here reads or writes the catalog

# The form is parsed by hand below (to cap files and fields, and to refuse each bad file on its own), so FastAPI
# cannot see it: the OpenAPI document gets it from here.
FILES = {"type": "array", "items": {"type": "string", "format": "binary"}}
UPLOAD_FORM = {
    "title": "UploadForm",
    "description": "Up to MAX_FILES_PER_UPLOAD files, each accepted or refused on its own (an item with status "
    "'rejected' and why); the request fails only when every file is refused.",
    "type": "object",
    "required": ["files"],
    "properties": {
        "files": {
            **FILES,
            "description": "One or more files (PDF, DOCX, HTML, Markdown, text): one job each. Parts named `file` "
            "are read too, for clients that use that name; other parts that are not files are ignored.",
        },
        "collection": {
            "type": "string",
            "pattern": COLLECTION_NAME.pattern,
            "maxLength": 64,
            "description": "Default: DEFAULT_COLLECTION",
        },
        "embed_model": {
            "type": "string",
            "maxLength": 128,
            "description": "A served embedder's name to bind a new collection to (as POST /api/collections); for "
            "an existing one it must be the model it is bound to. Default: ml-api's default embedder",
        },
    },
}
UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": UPLOAD_FORM}}}}


def document(row: dict[str, Any]) -> dict[str, Any]:
    """A document is its own ingestion job: `job_id` is its id, for clients that think in jobs."""
    return {**row, "job_id": row["id"]}


def _rejected(filename: str | None, refusal: Mapped) -> dict[str, Any]:
    return {
        "filename": filename or "",
        "status": "rejected",
        "error": refusal.message,
        "error_type": refusal.error_type,
    }


async def writable(
    catalog: Any, ingestion: Any, access: AccessService, who: Principal, name: str, embed_model: str | None
) -> None:
    """The upload's collection, created (and owned by the caller) when it does not exist yet; 404 when the caller
    cannot read it, 403 when it may read but not write."""
    if await catalog.run(catalog.get_collection, name) is None:
        await access.may_create(who)
        await ingestion.create_collection(name, embed_model, existing_ok=True)
        await access.claim(who, name)
    await access.check(who, name, WRITE)


async def readable_document(catalog: Any, access: AccessService, who: Principal, doc_id: str, need: int) -> Any:
    """The document, or NotFound when it does not exist or its collection is not readable (the same answer)."""
    doc = await _visible(catalog, doc_id)
    try:
        await access.check(who, doc["collection"], need)
    except NotFound:
        raise NotFound(f"document {doc_id[:64]} not found") from None
    return doc


@router.post(
    "",
    status_code=202,
    response_model=UploadResponse,
    responses=raises(
        InvalidInput,
        Forbidden,
        Conflict,
        TooLarge,
        UnsupportedFormat,
        UpstreamError,
        UpstreamUnavailable,
        NotFound,
        CATALOG_DOWN,
    ),
    openapi_extra=UPLOAD_BODY,
)
async def upload(
    request: Request,
    settings: SettingsDep,
    ingestion: IngestionDep,
    catalog: CatalogDep,
    access: AccessDep,
    who: PrincipalDep,
) -> Any:
    """Multipart upload: one or more `files` fields, optional `collection` and `embed_model` fields. 202: one job
    per file."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedFormat(
            "upload as multipart/form-data with one or more 'files' fields (curl -F files=@doc.pdf)"
        )
    async with request.form(max_files=settings.max_files_per_upload, max_fields=20) as form:
        collection = form.get("collection") or settings.default_collection
        if not isinstance(collection, str):
            raise InvalidInput("'collection' must be a text field")
        try:
            check_collection_name(collection)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        embed_model = form.get("embed_model") or None
        if embed_model is not None and (not isinstance(embed_model, str) or len(embed_model) > 128):
            raise InvalidInput("'embed_model' must be a text field of at most 128 characters")
        files = [f for f in form.getlist("files") + form.getlist("file") if isinstance(f, UploadFile)]
        if not files:
            raise InvalidInput("no files: send one or more multipart fields named 'files'")
        await writable(catalog, ingestion, access, who, collection, embed_model)
        if embed_model:  # before any file: an unknown or conflicting model refuses the whole upload
            await ingestion.create_collection(collection, embed_model, existing_ok=True)
        items: list[dict[str, Any]] = []
        refused: list[Mapped] = []
        for f in files:
            data = await f.read()
            try:
                doc = await ingestion.submit(collection, f.filename, data, f.content_type)
            except Exception as exc:
                refusal = classify(exc, sensitive_of(request))
                if refusal.status >= 500:  # not this file's fault: the request fails as a whole
                    raise
                refused.append(refusal)  # this file is refused; the others still go in
                items.append(_rejected(f.filename, refusal))
                continue
            items.append(document(doc))
    if len(refused) == len(items):  # nothing accepted: the request as a whole failed, say why for each
        first = refused[0]
        return error_response(first.status, first.error_type, "; ".join(r.message for r in refused))
    return {"documents": items}


@router.get("", response_model=DocumentList, responses=raises(CATALOG_DOWN))
async def list_documents(
    catalog: CatalogDep,
    access: AccessDep,
    who: PrincipalDep,
    collection: str | None = None,
    status: DocumentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,  # bounded: SQLite integers end at 2**63
) -> Any:
    """Documents of the collections the caller may read: a named one it cannot read lists nothing, exactly like a
    collection that does not exist."""
    among = await access.readable(who)
    rows, total = await catalog.run(catalog.list_documents, collection, status, limit, offset, among)
    return {"documents": [document(r) for r in rows], "total": total}


async def _visible(catalog: Catalog, doc_id: str) -> dict[str, Any]:
    """The document a route names, unless it is unknown or on its way out (404). Ids are UUIDs: anything longer
    than 64 characters or holding control characters cannot be one and never reaches the catalog."""
    doc = None
    if len(doc_id) <= 64 and doc_id.isprintable():
        doc = await catalog.run(catalog.get_document, doc_id)
    if doc is None or doc["status"] == DocumentStatus.DELETING:
        raise NotFound(f"document {doc_id[:64]} not found")
    return doc


@router.get("/{doc_id}", response_model=Document, responses=raises(NotFound, CATALOG_DOWN))
async def get_document(catalog: CatalogDep, access: AccessDep, who: PrincipalDep, doc_id: str) -> Any:
    return document(await readable_document(catalog, access, who, doc_id, READ))


TEXT_BODY = {"description": "UTF-8 text", "content": {"text/plain": {"schema": {"type": "string"}}}}
ORIGINAL_BODY = {
    "description": "The upload's bytes: PDF inline, DOCX as an attachment, anything else as text/plain under a "
    "sandboxing Content-Security-Policy (never HTML, SVG or XML a browser would run)",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
NOT_MODIFIED = {304: {"description": "If-None-Match names this version (its ETag derives from the upload's SHA-256)"}}


@router.get(
    "/{doc_id}/text",
    response_class=Response,
    responses={200: TEXT_BODY, **NOT_MODIFIED, **raises(NotFound, Conflict, CATALOG_DOWN)},
)
async def document_text(
    catalog: CatalogDep,
    access: AccessDep,
    who: PrincipalDep,
    doc_id: str,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The document's parsed text, exactly: a result's or citation's passage is `text[char_start:char_end]`
    (offsets in Unicode code points). 409 while the document is not parsed yet."""
    doc = await readable_document(catalog, access, who, doc_id, READ)
    if (cached := originals.not_modified(doc, "text", if_none_match)) is not None:
        return cached
    data = await catalog.run(catalog.read_text, doc_id)
    if data is None:
        if doc["status"] in STAGES:
            raise Conflict(f"document {doc_id} is {doc['status']}: its text is kept once it is parsed")
        raise NotFound(f"no parsed text is kept for document {doc_id} (indexed before texts were kept, or it failed "
                       "before parsing): upload it again")  # fmt: skip
    return originals.parsed_text(doc, data)


@router.get(
    "/{doc_id}/content",
    response_class=Response,
    responses={200: ORIGINAL_BODY, **NOT_MODIFIED, **raises(NotFound, CATALOG_DOWN)},
)
async def document_content(
    catalog: CatalogDep,
    access: AccessDep,
    who: PrincipalDep,
    doc_id: str,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The original upload, with its type: PDF inline, DOCX as a download, any other format as text/plain."""
    doc = await readable_document(catalog, access, who, doc_id, READ)
    if (cached := originals.not_modified(doc, "original", if_none_match)) is not None:
        return cached
    data = await catalog.run(catalog.read_upload, doc_id)
    if data is None:
        raise NotFound(f"the upload of document {doc_id} is not kept (indexed before originals were kept): "
                       "upload it again")  # fmt: skip
    return originals.original(doc, data)


@router.post(
    "/{doc_id}/retry",
    status_code=202,
    response_model=Document,
    responses=raises(NotFound, Forbidden, Conflict, CATALOG_DOWN),
)
async def retry_document(
    ingestion: IngestionDep, catalog: CatalogDep, access: AccessDep, who: PrincipalDep, doc_id: str
) -> Any:
    """Runs a failed document's job again from its stored upload (no re-upload). 409 unless it is failed."""
    await readable_document(catalog, access, who, doc_id, WRITE)
    return document(await ingestion.retry(doc_id))


@router.delete(  # a store failure: purged by the next claimer
    "/{doc_id}", responses=raises(NotFound, Forbidden, CATALOG_DOWN)
)
async def delete_document(
    ingestion: IngestionDep, catalog: CatalogDep, access: AccessDep, who: PrincipalDep, doc_id: str
) -> dict[str, Any]:
    """Hidden from queries at once; its points are removed before this returns (or when its job stops)."""
    await readable_document(catalog, access, who, doc_id, WRITE)
    if await ingestion.delete_document(doc_id) is None:
        raise NotFound(f"document {doc_id} not found")
    return {"id": doc_id, "deleted": True}
