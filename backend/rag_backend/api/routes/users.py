"""/api/users (admins manage users) and /api/keys (each user's API keys; admins see and revoke all)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from rag_backend.access.model import ADMIN, READ, Forbidden, Principal, Unauthenticated
from rag_backend.api.auth_schemas import Key, KeyCreate, NewKey, User, UserCreate, UserUpdate
from rag_backend.api.deps import AccessDep, PrincipalDep
from rag_backend.api.responses import raises
from rag_backend.catalog import CatalogUnavailable
from rag_backend.errors import Conflict, InvalidInput, NotFound

router = APIRouter(tags=["users"])
EmailPath = Annotated[str, Path(max_length=320)]


def require(who: Principal, level: int, what: str) -> None:
    if not who.signed_in:
        raise Unauthenticated("sign in first")
    if not who.can(level):
        raise Forbidden(f"{what} needs {'an admin' if level == ADMIN else 'more'} access")


@router.post(
    "/api/users", status_code=201, response_model=User,
    responses=raises(Forbidden, InvalidInput, Conflict, CatalogUnavailable),
)  # fmt: skip
async def create_user(body: UserCreate, who: PrincipalDep, access: AccessDep) -> Any:
    """A user with a password (or none: OIDC sign-in only)."""
    require(who, ADMIN, "managing users")
    return await access.create_user(body.email, body.role, body.password, body.name)


@router.get("/api/users", response_model=list[User], responses=raises(Forbidden, CatalogUnavailable))
async def list_users(who: PrincipalDep, access: AccessDep) -> Any:
    require(who, ADMIN, "listing users")
    return await access.list_users()


@router.patch(
    "/api/users/{email}", response_model=User, responses=raises(Forbidden, InvalidInput, NotFound, CatalogUnavailable)
)
async def update_user(email: EmailPath, body: UserUpdate, who: PrincipalDep, access: AccessDep) -> Any:
    """Role, disabled, name, password. Disabling ends the user's sessions and stops their keys at once."""
    require(who, ADMIN, "managing users")
    if who.email and who.email == email.strip().lower() and (body.disabled or body.role not in (None, "admin")):
        raise Forbidden("you cannot disable or demote yourself: another admin can")
    return await access.update_user(email, body.role, body.disabled, body.password, body.name)


@router.post(
    "/api/keys", status_code=201, response_model=NewKey, responses=raises(Forbidden, InvalidInput, CatalogUnavailable)
)
async def create_key(body: KeyCreate, who: PrincipalDep, access: AccessDep) -> Any:
    """A key for the signed-in user; its token is in this answer only."""
    require(who, READ, "creating keys")
    token, row = await access.create_key(who, body.name, body.scope, body.expires_at)
    return {**row, "token": token}


@router.get("/api/keys", response_model=list[Key], responses=raises(CatalogUnavailable))
async def list_keys(who: PrincipalDep, access: AccessDep) -> Any:
    """Your keys (an admin: everyone's); never their tokens."""
    return await access.list_keys(who)


@router.delete("/api/keys/{key_id}", status_code=204, responses=raises(NotFound, CatalogUnavailable))
async def revoke_key(key_id: Annotated[str, Path(max_length=64)], who: PrincipalDep, access: AccessDep) -> Response:
    """Revoked on every replica at once (keys are looked up per request)."""
    await access.revoke_key(who, key_id)
    return Response(status_code=204)
