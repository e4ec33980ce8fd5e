"""The access tables of the catalog (migration 0006): users, sessions, API keys, grants, failed sign-ins, OIDC flows.

Synchronous SQL on the catalog's engine (SQLite or PostgreSQL alike); async callers go through `Catalog.run`.
Secrets are stored only as sha256 hashes of high-entropy tokens (a session cookie, an API key): a copy of the
database signs nobody in. Every credential is looked up on every request, never cached by a process, so a revoked
key, an ended session or a disabled user is refused by every replica on its next request.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from sqlalchemy import text

from rag_backend.catalog import Catalog
from rag_backend.errors import Conflict

_USER = "u.id AS user_id, u.email, u.name, u.role, u.disabled"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessStore:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    # -- users ---------------------------------------------------------------------------------------
    def create_user(
        self, email: str, role: str, password_hash: str | None, name: str | None, oidc_subject: str | None = None
    ) -> dict[str, Any]:
        user_id = str(uuid.uuid4())
        added = self.c._run(
            "INSERT INTO users(id, email, name, role, password_hash, oidc_subject, created_at) "
            "VALUES (:id, :email, :name, :role, :pw, :sub, :now) ON CONFLICT DO NOTHING",
            id=user_id, email=email, name=name, role=role, pw=password_hash, sub=oidc_subject, now=time.time(),
        )  # fmt: skip
        if not added:
            raise Conflict(f"a user with e-mail {email} already exists")
        return self.user_by_email(email)  # type: ignore[return-value]

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        return self.c._one("SELECT * FROM users WHERE email = :e", e=email)

    def user_by_subject(self, subject: str) -> dict[str, Any] | None:
        return self.c._one("SELECT * FROM users WHERE oidc_subject = :s", s=subject)

    def list_users(self) -> list[dict[str, Any]]:
        return self.c._all("SELECT * FROM users ORDER BY email")

    def update_user(self, email: str, **fields: Any) -> dict[str, Any] | None:
        """role, disabled, name, password_hash, oidc_subject; disabling ends the user's sessions at once."""
        allowed = {"role", "disabled", "name", "password_hash", "oidc_subject"}
        if set(fields) - allowed:
            raise ValueError(f"not user columns: {sorted(set(fields) - allowed)}")
        if fields:
            sets = ", ".join(f"{k} = :{k}" for k in fields)
            self.c._run(f"UPDATE users SET {sets} WHERE email = :email", email=email, **fields)
        user = self.user_by_email(email)
        if user and user["disabled"]:
            self.c._run("DELETE FROM sessions WHERE user_id = :u", u=user["id"])
        return user

    # -- sessions ------------------------------------------------------------------------------------
    def add_session(self, token: str, user_id: str, ttl_s: float) -> None:
        now = time.time()
        self.c._run("DELETE FROM sessions WHERE user_id = :u AND expires_at < :now", u=user_id, now=now)
        self.c._run(
            "INSERT INTO sessions(token_hash, user_id, created_at, expires_at) VALUES (:h, :u, :now, :until)",
            h=digest(token), u=user_id, now=now, until=now + ttl_s,
        )  # fmt: skip

    def session_user(self, token: str) -> dict[str, Any] | None:
        """The live session's user (not disabled), or None."""
        return self.c._one(
            f"SELECT {_USER} FROM sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_hash = :h AND s.expires_at > :now AND u.disabled = 0",
            h=digest(token), now=time.time(),
        )  # fmt: skip

    def end_session(self, token: str) -> None:
        self.c._run("DELETE FROM sessions WHERE token_hash = :h OR expires_at < :now", h=digest(token), now=time.time())

    # -- API keys ------------------------------------------------------------------------------------
    def add_key(self, token: str, user_id: str, name: str, scope: str, expires_at: float | None) -> dict[str, Any]:
        key_id = uuid.uuid4().hex[:16]
        self.c._run(
            "INSERT INTO api_keys(id, user_id, name, scope, token_hash, prefix, created_at, expires_at) "
            "VALUES (:id, :u, :name, :scope, :h, :prefix, :now, :exp)",
            id=key_id, u=user_id, name=name, scope=scope, h=digest(token), prefix=token[:12], now=time.time(),
            exp=expires_at,
        )  # fmt: skip
        return self.list_keys(None, key_id)[0]

    def key_user(self, token: str) -> dict[str, Any] | None:
        """The live key's owner (not disabled) with the key's id and scope, or None."""
        return self.c._one(
            f"SELECT {_USER}, k.id AS key_id, k.scope FROM api_keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.token_hash = :h AND (k.expires_at IS NULL OR k.expires_at > :now) AND u.disabled = 0",
            h=digest(token), now=time.time(),
        )  # fmt: skip

    def list_keys(self, user_id: str | None, key_id: str | None = None) -> list[dict[str, Any]]:
        where, args = [], {}
        if user_id is not None:
            where.append("k.user_id = :u")
            args["u"] = user_id
        if key_id is not None:
            where.append("k.id = :k")
            args["k"] = key_id
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self.c._all(
            "SELECT k.id, k.name, k.scope, k.prefix, k.created_at, k.expires_at, u.email AS owner "
            f"FROM api_keys k JOIN users u ON u.id = k.user_id {clause} ORDER BY k.created_at",
            **args,
        )

    def delete_key(self, key_id: str, user_id: str | None) -> bool:
        """Only the owner's own key, unless `user_id` is None (an admin)."""
        if user_id is None:
            return self.c._run("DELETE FROM api_keys WHERE id = :k", k=key_id) == 1
        return self.c._run("DELETE FROM api_keys WHERE id = :k AND user_id = :u", k=key_id, u=user_id) == 1

    # -- collections: owners and grants --------------------------------------------------------------
    def collection_access(self, name: str, user_id: str) -> tuple[bool, str | None, str | None]:
        """(exists and live, owner id, this user's grant)."""
        row = self.c._one(
            "SELECT c.owner_id, m.access FROM collections c LEFT JOIN collection_members m "
            "ON m.collection = c.name AND m.user_id = :u WHERE c.name = :n AND c.deleting = 0",
            n=name, u=user_id,
        )  # fmt: skip
        return (row is not None, row["owner_id"] if row else None, row["access"] if row else None)

    def readable(self, user_id: str) -> frozenset[str]:
        rows = self.c._all(
            "SELECT name FROM collections WHERE deleting = 0 AND (owner_id = :u OR name IN "
            "(SELECT collection FROM collection_members WHERE user_id = :u))",
            u=user_id,
        )  # fmt: skip
        return frozenset(r["name"] for r in rows)

    def grants(self, user_id: str) -> dict[str, str]:
        """collection -> read | write | owner, for one user."""
        rows = self.c._all(
            "SELECT name, 'owner' AS access FROM collections WHERE deleting = 0 AND owner_id = :u "
            "UNION ALL SELECT collection AS name, access FROM collection_members WHERE user_id = :u",
            u=user_id,
        )  # fmt: skip
        out: dict[str, str] = {}
        for r in rows:
            if out.get(r["name"]) != "owner":
                out[r["name"]] = r["access"]
        return out

    def owners(self) -> dict[str, str | None]:
        """collection -> owner e-mail (None: no owner)."""
        rows = self.c._all(
            "SELECT c.name, u.email FROM collections c LEFT JOIN users u ON u.id = c.owner_id WHERE c.deleting = 0"
        )
        return {r["name"]: r["email"] for r in rows}

    def claim_owner(self, name: str, user_id: str) -> bool:
        """Records the creator of a collection that has none yet; stale grants of an earlier life of the name go."""
        with self.c._tx() as conn:
            done = conn.execute(
                text("UPDATE collections SET owner_id = :u WHERE name = :n AND owner_id IS NULL AND deleting = 0"),
                {"u": user_id, "n": name},
            ).rowcount
            if done:
                conn.execute(text("DELETE FROM collection_members WHERE collection = :n"), {"n": name})
        return done == 1

    def set_member(self, name: str, user_id: str, access: str) -> None:
        self.c._run(
            "INSERT INTO collection_members(collection, user_id, access, created_at) VALUES (:n, :u, :a, :now) "
            "ON CONFLICT (collection, user_id) DO UPDATE SET access = excluded.access",
            n=name, u=user_id, a=access, now=time.time(),
        )  # fmt: skip

    def remove_member(self, name: str, user_id: str) -> bool:
        return (
            self.c._run("DELETE FROM collection_members WHERE collection = :n AND user_id = :u", n=name, u=user_id) == 1
        )

    def members(self, name: str) -> list[dict[str, Any]]:
        return self.c._all(
            "SELECT u.email, u.name, m.access FROM collection_members m JOIN users u ON u.id = m.user_id "
            "WHERE m.collection = :n ORDER BY u.email",
            n=name,
        )

    def forget_collection(self, name: str) -> None:
        """A deleted collection's grants go with it (a new collection of that name starts with none)."""
        self.c._run("DELETE FROM collection_members WHERE collection = :n", n=name)

    # -- failed sign-ins -----------------------------------------------------------------------------
    def failures(self, keys: list[str]) -> dict[str, tuple[int, float]]:
        """key -> (failures, window end) for the keys whose window is still open."""
        marks = ", ".join(f":k{n}" for n in range(len(keys)))
        rows = self.c._all(
            f"SELECT key, failures, window_until FROM login_failures WHERE key IN ({marks}) AND window_until > :now",
            now=time.time(), **{f"k{n}": k for n, k in enumerate(keys)},
        )  # fmt: skip
        return {r["key"]: (int(r["failures"]), float(r["window_until"])) for r in rows}

    def count_failure(self, keys: list[str], window_s: float) -> None:
        """One more failure for each key; a window that ended starts again at one."""
        now = time.time()
        with self.c._tx() as conn:
            for key in keys:
                conn.execute(
                    text("INSERT INTO login_failures(key, failures, window_until) VALUES (:k, 1, :until) "
                         "ON CONFLICT (key) DO UPDATE SET "
                         "failures = CASE WHEN login_failures.window_until > :now "
                         "THEN login_failures.failures + 1 ELSE 1 END, "
                         "window_until = CASE WHEN login_failures.window_until > :now "
                         "THEN login_failures.window_until ELSE :until END"),
                    {"k": key, "until": now + window_s, "now": now},
                )  # fmt: skip

    def clear_failures(self, key: str) -> None:
        self.c._run("DELETE FROM login_failures WHERE key = :k OR window_until < :now", k=key, now=time.time())

    # -- OIDC flows in progress ------------------------------------------------------------------------
    def add_flow(self, state: str, verifier: str, nonce: str, redirect_uri: str, ttl_s: float) -> None:
        now = time.time()
        self.c._run("DELETE FROM oidc_flows WHERE expires_at < :now", now=now)
        self.c._run(
            "INSERT INTO oidc_flows(state, code_verifier, nonce, redirect_uri, expires_at) "
            "VALUES (:s, :v, :n, :r, :until)",
            s=state, v=verifier, n=nonce, r=redirect_uri, until=now + ttl_s,
        )  # fmt: skip

    def take_flow(self, state: str) -> dict[str, Any] | None:
        """The flow, once: a replayed callback finds nothing."""
        rows = self.c._all(
            "DELETE FROM oidc_flows WHERE state = :s AND expires_at > :now RETURNING *", s=state, now=time.time()
        )
        return rows[0] if rows else None
