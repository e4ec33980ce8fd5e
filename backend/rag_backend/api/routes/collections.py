"""/api/collections: list, create, delete (a job: a collection's documents and points go with it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from rag_backend.api.deps import CatalogDep, IngestionDep
from rag_backend.api.responses import raises
from rag_backend.api.schemas import CollectionCreate, CollectionDeletion, CollectionInfo
from rag_backend.catalog import CatalogUnavailable
from rag_backend.errors import Conflict, InvalidInput, NotFound, UpstreamError, UpstreamUnavailable
from rag_backend.store import StoreError

router = APIRouter(prefix="/api/collections", tags=["collections"])
CATALOG_DOWN = CatalogUnavailable  # every route here reads or writes the catalog


def collection(row: dict[str, Any]) -> dict[str, Any]:
    """The catalog's `embed_key` (provider:model:dim) is what the API calls `embed_model`."""
    return {**row, "embed_model": row.get("embed_key")}


@router.get("", response_model=list[CollectionInfo], responses=raises(CATALOG_DOWN))
async def list_collections(catalog: CatalogDep) -> Any:
    return [collection(r) for r in await catalog.run(catalog.list_collections)]


@router.post(
    "",
    status_code=201,
    response_model=CollectionInfo,
    responses=raises(InvalidInput, Conflict, UpstreamUnavailable, UpstreamError, StoreError, CATALOG_DOWN),
)
async def create_collection(catalog: CatalogDep, ingestion: IngestionDep, body: CollectionCreate) -> Any:
    """With `embed_model`, bound to that served embedder now (an unknown name is a 400 naming the served ones)."""
    await ingestion.create_collection(body.name, body.embed_model)
    return next(collection(r) for r in await catalog.run(catalog.list_collections) if r["name"] == body.name)


@router.delete("/{name}", status_code=202, response_model=CollectionDeletion, responses=raises(NotFound, CATALOG_DOWN))
async def delete_collection(ingestion: IngestionDep, name: str) -> Any:
    """202 at once: the collection leaves listings and queries now; a job (whichever backend process or worker
    claims it, resumed after a restart) removes its documents, points and uploads."""
    if not await ingestion.delete_collection(name):
        raise NotFound(f"collection '{name}' does not exist")
    return {"name": name, "status": "deleting"}
