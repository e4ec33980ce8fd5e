"""The access service: sign-in, credentials to a Principal, users, keys, and who may read or write a collection.

No HTTP here: routes and the guard middleware call it and map its errors (api/errors.py). Every lookup goes to the
catalog (its async facade), so every replica sees a revocation on the next request.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from rag_backend.access.model import (
    ADMIN,
    OPERATOR,
    READ,
    WRITE,
    Access,
    Forbidden,
    Principal,
    Role,
    Scope,
    Throttled,
    Unauthenticated,
    Via,
    parse,
)
from rag_backend.access.passwords import Passwords, check_password
from rag_backend.access.store import AccessStore
from rag_backend.catalog import Catalog
from rag_backend.core.config import Settings
from rag_backend.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("rag_backend.access")

SESSION_BYTES = 32  # 256 bits: guessing is hopeless, so a plain sha256 of it is a safe stored form
KEY_PREFIX = "rag_"
BAD_LOGIN = "wrong e-mail or password"  # the one answer for an unknown e-mail, a wrong password, a disabled user


def normal_email(email: str) -> str:
    email = email.strip().lower()
    if not (3 <= len(email) <= 320) or "@" not in email[1:-1] or any(c.isspace() for c in email):
        raise InvalidInput("email must be an e-mail address (name@domain)")
    return email


def _principal(row: dict[str, Any], via: Via, scope: str | None = None) -> Principal:
    role = Role(row["role"])
    level = min(ADMIN if role == Role.ADMIN else WRITE if role == Role.EDITOR else READ,
                {None: ADMIN, "read": READ, "write": WRITE, "admin": ADMIN}[scope])  # fmt: skip
    return Principal(via, row["user_id"], row["email"], row["name"], role, level, row.get("key_id"))


class AccessService:
    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.s = settings
        self.catalog = catalog
        self.store = AccessStore(catalog)
        self.passwords = Passwords()

    def close(self) -> None:
        self.passwords.close()

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.catalog.run(fn, *args, **kwargs)

    # -- credentials -----------------------------------------------------------------------------------
    async def from_key(self, token: str) -> Principal | None:
        if self.s.api_key and secrets.compare_digest(token.encode(), self.s.api_key.encode()):
            return OPERATOR
        row = await self._run(self.store.key_user, token)
        return _principal(row, Via.KEY, row["scope"]) if row else None

    async def from_session(self, token: str) -> Principal | None:
        row = await self._run(self.store.session_user, token)
        return _principal(row, Via.SESSION) if row else None

    async def login(self, email: str, password: str, address: str) -> str:
        """A new session's token. Throttled per account and per address; the same refusal whatever was wrong."""
        email = email.strip().lower()[:320]
        keys = [f"account:{email}", f"address:{address}"]
        counts = await self._run(self.store.failures, keys)
        now = time.time()
        for key, limit in zip(keys, (self.s.login_max_failures, self.s.login_max_failures_per_address), strict=True):
            failures, until = counts.get(key, (0, 0.0))
            if failures >= limit:
                raise Throttled("too many failed sign-ins: try again later", until - now)
        user = await self._run(self.store.user_by_email, email)
        ok = await self.passwords.verify(user["password_hash"] if user else None, password)
        if not ok or user is None or user["disabled"]:
            await self._run(self.store.count_failure, keys, self.s.login_window_s)
            raise Unauthenticated(BAD_LOGIN)
        await self._run(self.store.clear_failures, keys[0])
        return await self.start_session(user["id"])

    async def start_session(self, user_id: str) -> str:
        token = secrets.token_urlsafe(SESSION_BYTES)
        await self._run(self.store.add_session, token, user_id, self.s.session_ttl_s)
        return token

    async def logout(self, token: str) -> None:
        await self._run(self.store.end_session, token)

    # -- users -----------------------------------------------------------------------------------------
    async def create_user(self, email: str, role: str, password: str | None, name: str | None = None) -> dict[str, Any]:
        email, role = normal_email(email), parse(Role, role)
        if password is not None and (why := check_password(password)):
            raise InvalidInput(why)
        hashed = await self.passwords.hash(password) if password is not None else None
        return public_user(await self._run(self.store.create_user, email, role.value, hashed, name))

    async def list_users(self) -> list[dict[str, Any]]:
        return [public_user(u) for u in await self._run(self.store.list_users)]

    async def update_user(
        self, email: str, role: str | None = None, disabled: bool | None = None, password: str | None = None,
        name: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        email = normal_email(email)
        fields: dict[str, Any] = {}
        if role is not None:
            fields["role"] = parse(Role, role).value
        if disabled is not None:
            fields["disabled"] = int(disabled)
        if name is not None:
            fields["name"] = name
        if password is not None:
            if why := check_password(password):
                raise InvalidInput(why)
            fields["password_hash"] = await self.passwords.hash(password)
        user = await self._run(self.store.update_user, email, **fields)
        if user is None:
            raise NotFound(f"no user with e-mail {email}")
        return public_user(user)

    async def bootstrap_admin(self) -> None:
        """ADMIN_EMAIL / ADMIN_PASSWORD: the first admin, created at start (or set back to an enabled admin with
        that password, so a lost password is recovered by restarting with a new one)."""
        if not (self.s.admin_email and self.s.admin_password):
            return
        email = normal_email(self.s.admin_email)
        if why := check_password(self.s.admin_password):
            raise InvalidInput(f"ADMIN_PASSWORD: {why}")
        hashed = await self.passwords.hash(self.s.admin_password)
        if await self._run(self.store.user_by_email, email) is None:
            try:
                await self._run(self.store.create_user, email, Role.ADMIN.value, hashed, None)
                log.info("admin created", extra={"fields": {"email": email}})
                return
            except Conflict:  # another replica created it at the same moment: update it below
                pass
        await self._run(self.store.update_user, email, role=Role.ADMIN.value, disabled=0, password_hash=hashed)

    # -- keys ------------------------------------------------------------------------------------------
    async def create_key(
        self, who: Principal, name: str, scope: str, expires_at: float | None
    ) -> tuple[str, dict[str, Any]]:
        wanted = parse(Scope, scope)
        if who.user_id is None:
            raise Forbidden("API keys belong to users: sign in as one (the operator key has no keys of its own)")
        if {Scope.READ: READ, Scope.WRITE: WRITE, Scope.ADMIN: ADMIN}[wanted] > who.level:  # type: ignore[index]
            raise Forbidden(f"a '{wanted}' key would exceed what this {'key' if who.key_id else 'role'} may do")
        if expires_at is not None and expires_at <= time.time():
            raise InvalidInput("expires_at is in the past")
        token = KEY_PREFIX + secrets.token_urlsafe(SESSION_BYTES)
        row = await self._run(self.store.add_key, token, who.user_id, name, wanted.value, expires_at)
        return token, row

    async def list_keys(self, who: Principal) -> list[dict[str, Any]]:
        """Admins (and the operator) see every key; anyone else their own."""
        return await self._run(self.store.list_keys, _whose_keys(who))

    async def revoke_key(self, who: Principal, key_id: str) -> None:
        if not await self._run(self.store.delete_key, key_id, _whose_keys(who)):
            raise NotFound(f"no key {key_id}")

    # -- collections -----------------------------------------------------------------------------------
    async def readable(self, who: Principal) -> frozenset[str] | None:
        """The collections `who` may read; None = every one."""
        if who.unrestricted:
            return None
        if who.user_id is None:
            return frozenset()
        return await self._run(self.store.readable, who.user_id)

    async def check(self, who: Principal, name: str, need: int) -> None:
        """NotFound unless `who` may read the collection (as if it did not exist: a name is not a secret to
        probe); Forbidden when it may read but not `need` (WRITE: upload, delete documents; ADMIN: members,
        deleting the collection)."""
        if who.user_id is None and who.via not in (Via.NONE, Via.OPERATOR):
            raise NotFound(f"collection '{name}' does not exist")
        exists, owner, grant = await self._run(self.store.collection_access, name, who.user_id or "")
        admin = who.role == Role.ADMIN
        if not exists or not (admin or owner == who.user_id or grant):
            raise NotFound(f"collection '{name}' does not exist")
        mine = owner == who.user_id
        if need == WRITE and who.can(WRITE) and (admin or mine or grant == Access.WRITE):
            return
        if need == ADMIN and ((mine and who.can(WRITE)) or (admin and who.can(ADMIN))):
            return
        if need > READ:
            what = "change" if need == WRITE else "manage (members, deletion)"
            raise Forbidden(f"{'this key' if who.key_id else 'your access'} may not {what} collection '{name}'")

    async def may_create(self, who: Principal) -> None:
        if not who.can(WRITE):
            raise Forbidden("viewers cannot create collections: an editor or an admin can, or grant you one")

    async def claim(self, who: Principal, name: str) -> None:
        """The creator of a collection owns it."""
        if who.user_id is not None:
            await self._run(self.store.claim_owner, name, who.user_id)

    async def set_member(self, name: str, email: str, access: str) -> dict[str, Any]:
        grant = parse(Access, access)
        user = await self._run(self.store.user_by_email, normal_email(email))
        if user is None:
            raise NotFound(f"no user with e-mail {normal_email(email)}")
        await self._run(self.store.set_member, name, user["id"], grant.value)
        return {"email": user["email"], "name": user["name"], "access": grant.value}

    async def remove_member(self, name: str, email: str) -> None:
        user = await self._run(self.store.user_by_email, normal_email(email))
        if user is None or not await self._run(self.store.remove_member, name, user["id"]):
            raise NotFound(f"{normal_email(email)} is not a member of '{name}'")

    async def members(self, name: str) -> list[dict[str, Any]]:
        return await self._run(self.store.members, name)

    async def forget(self, name: str) -> None:
        await self._run(self.store.forget_collection, name)

    async def annotations(self, who: Principal) -> tuple[dict[str, str | None], dict[str, str]]:
        """(collection -> owner e-mail, collection -> this caller's access) for listings."""
        owners = await self._run(self.store.owners)
        grants = {} if who.user_id is None else await self._run(self.store.grants, who.user_id)
        return owners, grants


def _whose_keys(who: Principal) -> str | None:
    if who.unrestricted and who.can(ADMIN):
        return None
    if who.user_id is None:
        raise Unauthenticated("sign in first")
    return who.user_id


def public_user(row: dict[str, Any]) -> dict[str, Any]:
    """A user as the API shows it: never its password hash."""
    return {
        "email": row["email"], "name": row["name"], "role": row["role"], "disabled": bool(row["disabled"]),
        "sso": row.get("oidc_subject") is not None, "created_at": row["created_at"],
    }  # fmt: skip
