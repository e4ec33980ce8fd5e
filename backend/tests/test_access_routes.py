"""Every route against every kind of caller, from one table: anonymous, a viewer, two editors, an admin (signed in
with the cookie) and the operator key (API_KEY). The test enumerates the app's routes and fails when one has no
row here, so a route added without deciding who may call it cannot ship.

editor1 owns collection e1 (the viewer is granted read on it), editor2 owns e2. A collection a caller cannot read
answers 404 exactly like one that does not exist; one it reads but may not change answers 403.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from access_harness import ADMIN, OPERATOR_KEY, app_running, client, every_route, settings_for, signed_in
from conftest import Proc

pytestmark = pytest.mark.anyio

CALLERS = ("anonymous", "viewer", "editor1", "editor2", "admin", "operator")
PASSWORD = "a-good-password"
TEXT = b"The lighthouse keeper logs the tide at dawn. The hidden sentence: cobalt herons nest under the pier."


@dataclass
class World:
    app: Any
    clients: dict[str, httpx.AsyncClient]
    counter: itertools.count = field(default_factory=itertools.count)

    def unique(self, what: str) -> str:
        return f"{what}{next(self.counter)}"

    async def upload(self, caller: str, collection: str) -> httpx.Response:
        """A new document each time: the same bytes again would be answered with the first one (a duplicate)."""
        name = self.unique("doc")
        files = {"files": (f"{name}.txt", TEXT + f" ({name})".encode(), "text/plain")}
        return await self.clients[caller].post("/api/documents", files=files, data={"collection": collection})

    async def new_doc(self) -> str:
        r = await self.upload("editor1", "e1")
        assert r.status_code == 202, r.text
        return str(r.json()["documents"][0]["id"])

    async def new_collection(self) -> str:
        """Owned by editor1, the viewer granted read."""
        name = self.unique("c")
        assert (await self.clients["editor1"].post("/api/collections", json={"name": name})).status_code == 201
        grant = {"email": "viewer@example.test", "access": "read"}
        assert (await self.clients["editor1"].put(f"/api/collections/{name}/members", json=grant)).status_code == 200
        return name

    async def new_user(self) -> str:
        email = f"{self.unique('someone')}@example.test"
        body = {"email": email, "role": "viewer", "password": PASSWORD}
        r = await self.clients["admin"].post("/api/users", json=body)
        assert r.status_code == 201, r.text
        return email

    async def new_key_of_editor1(self) -> str:
        r = await self.clients["editor1"].post("/api/keys", json={"name": self.unique("k"), "scope": "read"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def new_conversation_of_editor1(self) -> str:
        r = await self.clients["editor1"].post("/api/conversations", json={"title": self.unique("chat")})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def new_answer_of_editor1(self) -> tuple[str, str]:
        """A conversation of editor1 with one question and its answer: (conversation id, the answer's id)."""
        conv = await self.new_conversation_of_editor1()
        r = await self.clients["editor1"].post("/api/query", json={**QUERY, "conversation_id": conv})
        assert r.status_code == 200, r.text
        return conv, str(r.json()["message_id"])


Request = Callable[[World, str, httpx.AsyncClient], Awaitable[httpx.Response]]


def expect(anonymous: int, viewer: int, editor1: int, editor2: int, admin: int, operator: int) -> dict[str, int]:
    return dict(zip(CALLERS, (anonymous, viewer, editor1, editor2, admin, operator), strict=True))


def same(status: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, status)


async def _login(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    """With the caller's credentials, on a copy of its client (the new session's cookie must not replace its own)."""
    email = await w.new_user()
    async with client(w.app, headers=c.headers, cookies=c.cookies) as copy:
        return await copy.post("/api/auth/login", json={"email": email, "password": PASSWORD})


async def _logout(w: World, caller: str, c: httpx.AsyncClient) -> httpx.Response:
    """Signs out a session of its own (the caller's credentials ride along; its main session stays)."""
    email = await w.new_user()
    own = await signed_in(w.app, email, PASSWORD)
    try:
        return await own.post("/api/auth/logout")
    finally:
        await own.aclose()


async def _delete_member(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    email = await w.new_user()
    r = await w.clients["editor1"].put("/api/collections/e1/members", json={"email": email, "access": "read"})
    assert r.status_code == 200
    return await c.delete(f"/api/collections/e1/members/{email}")


async def _patch_user(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.patch(f"/api/users/{await w.new_user()}", json={"role": "editor"})


async def _delete_key(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.delete(f"/api/keys/{await w.new_key_of_editor1()}")


async def _delete_doc(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.delete(f"/api/documents/{await w.new_doc()}")


async def _retry_doc(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.post(f"/api/documents/{await w.new_doc()}/retry")  # not failed: 409 for whoever may write


async def _delete_collection(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.delete(f"/api/collections/{await w.new_collection()}")


async def _get_conversation(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.get(f"/api/conversations/{await w.new_conversation_of_editor1()}")


async def _rename_conversation(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.patch(f"/api/conversations/{await w.new_conversation_of_editor1()}", json={"title": "renamed"})


async def _delete_conversation(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    return await c.delete(f"/api/conversations/{await w.new_conversation_of_editor1()}")


async def _feedback(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
    conv, answer = await w.new_answer_of_editor1()
    return await c.post(f"/api/conversations/{conv}/messages/{answer}/feedback", json={"rating": 1})


def _get(path: str) -> Request:
    async def call(w: World, _: str, c: httpx.AsyncClient) -> httpx.Response:
        return await c.get(path.replace("{doc}", w.doc_id))  # type: ignore[attr-defined]

    return call


QUERY = {"query": "who nests under the pier?", "collection": "e1", "rerank": False}

# (method, path template) -> (the request, what each caller gets)
TABLE: dict[tuple[str, str], tuple[Request, dict[str, int]]] = {
    ("POST", "/api/auth/login"): (_login, same(204)),
    ("POST", "/api/auth/logout"): (_logout, same(204)),
    ("GET", "/api/auth/me"): (_get("/api/auth/me"), expect(401, 200, 200, 200, 200, 200)),
    ("GET", "/api/auth/options"): (_get("/api/auth/options"), same(200)),
    ("GET", "/api/auth/oidc/login"): (_get("/api/auth/oidc/login"), same(400)),  # no OIDC here: test_oidc.py
    ("GET", "/api/auth/oidc/callback"): (_get("/api/auth/oidc/callback?state=x&code=y"), same(400)),
    ("GET", "/api/users"): (_get("/api/users"), expect(401, 403, 403, 403, 200, 200)),
    ("POST", "/api/users"): (
        lambda w, _, c: c.post("/api/users", json={"email": f"{w.unique('new')}@example.test", "role": "viewer"}),
        expect(401, 403, 403, 403, 201, 201),
    ),
    ("PATCH", "/api/users/{email}"): (_patch_user, expect(401, 403, 403, 403, 200, 200)),
    ("GET", "/api/keys"): (_get("/api/keys"), expect(401, 200, 200, 200, 200, 200)),
    ("POST", "/api/keys"): (
        lambda w, _, c: c.post("/api/keys", json={"name": "k", "scope": "read"}),
        expect(401, 201, 201, 201, 201, 403),  # the operator key is no user: it has no keys of its own
    ),
    ("DELETE", "/api/keys/{key_id}"): (_delete_key, expect(401, 404, 204, 404, 204, 204)),
    ("POST", "/api/documents"): (lambda w, caller, c: w.upload(caller, "e1"), expect(401, 403, 202, 404, 202, 202)),
    # A collection the caller cannot read lists nothing, as one that does not exist (test_access.py: the bodies).
    ("GET", "/api/documents"): (_get("/api/documents?collection=e1"), expect(401, 200, 200, 200, 200, 200)),
    ("GET", "/api/documents/{doc_id}"): (_get("/api/documents/{doc}"), expect(401, 200, 200, 404, 200, 200)),
    ("GET", "/api/documents/{doc_id}/text"): (_get("/api/documents/{doc}/text"), expect(401, 200, 200, 404, 200, 200)),
    ("GET", "/api/documents/{doc_id}/content"): (
        _get("/api/documents/{doc}/content"),
        expect(401, 200, 200, 404, 200, 200),
    ),
    ("DELETE", "/api/documents/{doc_id}"): (_delete_doc, expect(401, 403, 200, 404, 200, 200)),
    ("POST", "/api/documents/{doc_id}/retry"): (_retry_doc, expect(401, 403, 409, 404, 409, 409)),
    ("GET", "/api/collections"): (_get("/api/collections"), expect(401, 200, 200, 200, 200, 200)),
    ("POST", "/api/collections"): (
        lambda w, _, c: c.post("/api/collections", json={"name": w.unique("made")}),
        expect(401, 403, 201, 201, 201, 201),
    ),
    ("DELETE", "/api/collections/{name}"): (_delete_collection, expect(401, 403, 202, 404, 202, 202)),
    ("GET", "/api/collections/{name}/members"): (
        _get("/api/collections/e1/members"),
        expect(401, 200, 200, 404, 200, 200),
    ),
    ("PUT", "/api/collections/{name}/members"): (
        lambda w, _, c: c.put("/api/collections/e1/members", json={"email": ADMIN[0], "access": "read"}),
        expect(401, 403, 200, 404, 200, 200),
    ),
    ("DELETE", "/api/collections/{name}/members/{email}"): (_delete_member, expect(401, 403, 204, 404, 204, 204)),
    ("POST", "/api/query"): (lambda w, _, c: c.post("/api/query", json=QUERY), expect(401, 200, 200, 404, 200, 200)),
    ("POST", "/api/query/stream"): (
        lambda w, _, c: c.post("/api/query/stream", json=QUERY),
        expect(401, 200, 200, 404, 200, 200),
    ),
    ("GET", "/api/ai/health"): (_get("/api/ai/health"), expect(401, 200, 200, 200, 200, 200)),
    # Conversations are their owner's alone (viewers converse too): another caller's, an admin's included, is a 404.
    ("POST", "/api/conversations"): (
        lambda w, _, c: c.post("/api/conversations", json={"title": "mine"}),
        expect(401, 201, 201, 201, 201, 201),
    ),
    ("GET", "/api/conversations"): (_get("/api/conversations"), expect(401, 200, 200, 200, 200, 200)),
    ("GET", "/api/conversations/{conversation_id}"): (_get_conversation, expect(401, 404, 200, 404, 404, 404)),
    ("PATCH", "/api/conversations/{conversation_id}"): (_rename_conversation, expect(401, 404, 200, 404, 404, 404)),
    ("DELETE", "/api/conversations/{conversation_id}"): (_delete_conversation, expect(401, 404, 204, 404, 404, 404)),
    ("POST", "/api/conversations/{conversation_id}/messages/{message_id}/feedback"): (
        _feedback,
        expect(401, 404, 200, 404, 404, 404),
    ),
    # Everyone exports their own ratings; an admin's and the operator's export holds everyone's (test_conversations).
    ("GET", "/api/feedback"): (_get("/api/feedback?format=jsonl"), expect(401, 200, 200, 200, 200, 200)),
    # Outside /api: open to anyone (/ready hides URLs and paths from all but the operator key).
    ("GET", "/health"): (_get("/health"), same(200)),
    ("GET", "/ready"): (_get("/ready"), same(200)),
    ("GET", "/info"): (_get("/info"), same(200)),
    ("GET", "/metrics"): (_get("/metrics"), same(200)),
    ("GET", "/openapi.json"): (_get("/openapi.json"), same(200)),
    ("GET", "/docs"): (_get("/docs"), same(200)),
    ("GET", "/docs/oauth2-redirect"): (_get("/docs/oauth2-redirect"), same(200)),
    ("GET", "/redoc"): (_get("/redoc"), same(200)),
    ("GET", "/static-offline-docs"): (_get("/static-offline-docs/swagger-ui.css"), same(200)),
}


async def test_every_route_answers_each_caller_as_the_table_says(tmp_path: Path, ml_api: Proc) -> None:
    async with app_running(settings_for(tmp_path, ml_api.url)) as app:
        missing = every_route(app) - set(TABLE)
        assert not missing, f"routes without a rule in the access table: {sorted(missing)}"
        assert not set(TABLE) - every_route(app), "rules for routes that no longer exist"
        admin = await signed_in(app, *ADMIN)
        for who, role in (("viewer", "viewer"), ("editor1", "editor"), ("editor2", "editor")):
            body = {"email": f"{who}@example.test", "role": role, "password": PASSWORD}
            assert (await admin.post("/api/users", json=body)).status_code == 201
        clients = {
            "anonymous": client(app),
            "viewer": await signed_in(app, "viewer@example.test", PASSWORD),
            "editor1": await signed_in(app, "editor1@example.test", PASSWORD),
            "editor2": await signed_in(app, "editor2@example.test", PASSWORD),
            "admin": admin,
            "operator": client(app, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}),
        }
        world = World(app, clients)
        world.doc_id = await world.new_doc()  # type: ignore[attr-defined]
        assert (await world.upload("editor2", "e2")).status_code == 202
        grant = {"email": "viewer@example.test", "access": "read"}
        assert (await clients["editor1"].put("/api/collections/e1/members", json=grant)).status_code == 200

        wrong: list[str] = []
        for (method, path), (request, expected) in TABLE.items():
            for caller in CALLERS:
                r = await request(world, caller, clients[caller])
                if r.status_code != expected[caller]:
                    got = f"{r.status_code} (expected {expected[caller]}) {r.text[:200]}"
                    wrong.append(f"{method} {path} as {caller}: {got}")
        for c in clients.values():
            await c.aclose()
        assert not wrong, "\n".join(wrong)
