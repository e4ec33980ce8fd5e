"""/api/collections: list, create, delete (a job: a collection's documents and points go with it), and members.

Access: a caller sees only the collections it may read (every other name answers 404, as if it did not exist);
editors and admins create collections and own what they create; the owner (or an admin) grants others read or
write and deletes the collection.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from rag_backend.access.model import ADMIN, READ, Forbidden, Principal
from rag_backend.access.service import AccessService
from rag_backend.api.auth_schemas import Member, MemberSet
from rag_backend.api.deps import AccessDep, CatalogDep, IngestionDep, PrincipalDep
from rag_backend.api.responses import raises
from rag_backend.api.schemas import CollectionCreate, CollectionDeletion, CollectionInfo
from rag_backend.catalog import CatalogUnavailable
from rag_backend.errors import Conflict, InvalidInput, NotFound, UpstreamError, UpstreamUnavailable
from rag_backend.store import StoreError

router = APIRouter(prefix="/api/collections", tags=["collections"])
CATALOG_DOWN = CatalogUnavailable  # every route here reads or writes the catalog
Name = Annotated[str, Path(max_length=64)]


def collection(row: dict[str, Any]) -> dict[str, Any]:
    """The catalog's `embed_key` (provider:model:dim) is what the API calls `embed_model`."""
    return {**row, "embed_model": row.get("embed_key")}


async def visible(catalog: Any, access: AccessService, who: Principal) -> list[dict[str, Any]]:
    """The collections `who` may read, each with its owner and the caller's access."""
    rows = await catalog.run(catalog.list_collections)
    readable = await access.readable(who)
    owners, grants = await access.annotations(who)
    out = []
    for r in rows:
        if readable is not None and r["name"] not in readable:
            continue
        mine = grants.get(r["name"], "read")
        level = "admin" if who.role == "admin" or who.user_id is None else mine
        out.append({**collection(r), "owner": owners.get(r["name"]), "access": level})
    return out


@router.get("", response_model=list[CollectionInfo], responses=raises(CATALOG_DOWN))
async def list_collections(catalog: CatalogDep, access: AccessDep, who: PrincipalDep) -> Any:
    return await visible(catalog, access, who)


@router.post(
    "",
    status_code=201,
    response_model=CollectionInfo,
    responses=raises(InvalidInput, Forbidden, Conflict, UpstreamUnavailable, UpstreamError, StoreError, CATALOG_DOWN),
)
async def create_collection(
    catalog: CatalogDep, ingestion: IngestionDep, access: AccessDep, who: PrincipalDep, body: CollectionCreate
) -> Any:
    """With `embed_model`, bound to that served embedder now (an unknown name is a 400 naming the served ones).
    Editors and admins only; the caller owns it. A name taken by a collection you cannot see is a 409 too."""
    await access.may_create(who)
    await ingestion.create_collection(body.name, body.embed_model)
    await access.claim(who, body.name)
    return next(c for c in await visible(catalog, access, who) if c["name"] == body.name)


@router.delete(
    "/{name}", status_code=202, response_model=CollectionDeletion, responses=raises(NotFound, Forbidden, CATALOG_DOWN)
)
async def delete_collection(ingestion: IngestionDep, access: AccessDep, who: PrincipalDep, name: Name) -> Any:
    """202 at once: the collection leaves listings and queries now; a job (whichever backend process or worker
    claims it, resumed after a restart) removes its documents, points and uploads. Its owner or an admin."""
    await access.check(who, name, ADMIN)
    if not await ingestion.delete_collection(name):
        raise NotFound(f"collection '{name}' does not exist")
    await access.forget(name)
    return {"name": name, "status": "deleting"}


@router.get("/{name}/members", response_model=list[Member], responses=raises(NotFound, CATALOG_DOWN))
async def list_members(access: AccessDep, who: PrincipalDep, name: Name) -> Any:
    """Who besides the owner may read or write it (anyone who can read it may see this)."""
    await access.check(who, name, READ)
    return await access.members(name)


@router.put("/{name}/members", response_model=Member, responses=raises(NotFound, Forbidden, InvalidInput, CATALOG_DOWN))
async def set_member(access: AccessDep, who: PrincipalDep, name: Name, body: MemberSet) -> Any:
    """Grants a user read or write access (the owner or an admin); again with another access changes it."""
    await access.check(who, name, ADMIN)
    return await access.set_member(name, body.email, body.access)


@router.delete("/{name}/members/{email}", status_code=204, responses=raises(NotFound, Forbidden, CATALOG_DOWN))
async def remove_member(
    access: AccessDep, who: PrincipalDep, name: Name, email: Annotated[str, Path(max_length=320)]
) -> Response:
    await access.check(who, name, ADMIN)
    await access.remove_member(name, email)
    return Response(status_code=204)
