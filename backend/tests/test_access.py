"""Access control from a hostile caller's side, in-process (no ml-api needed): cookie flags, sign-in throttling
and what a refused sign-in tells, key scopes that try to climb, viewers creating collections, guessing collection
and document names, a cookie sent from another site, AUTH_MODE=none refused on a public address."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx
import pytest
from access_harness import ADMIN, DEAD_URL, OPERATOR_KEY, app_running, client, settings_for, signed_in
from pydantic import ValidationError

from rag_backend.core.config import Settings

pytestmark = pytest.mark.anyio
PASSWORD = "a-good-password"


async def _users(admin: httpx.AsyncClient, **roles: str) -> None:
    for name, role in roles.items():
        r = await admin.post("/api/users", json={"email": f"{name}@example.test", "role": role, "password": PASSWORD})
        assert r.status_code == 201, r.text


def _cookie_attributes(response: httpx.Response) -> dict[str, str]:
    raw = response.headers["set-cookie"]
    parts = [p.strip() for p in raw.split(";")]
    return {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


async def test_session_cookie_flags_and_server_side_logout(tmp_path: Path) -> None:
    async with app_running(settings_for(tmp_path)) as app:
        async with client(app) as c:
            r = await c.post("/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
            assert r.status_code == 204
            flags = _cookie_attributes(r)
            assert "httponly" in flags and flags["samesite"].lower() == "lax" and flags["path"] == "/"
            assert int(flags["max-age"]) == 12 * 3600 and "secure" not in flags  # plain http, COOKIE_SECURE off
            token = r.cookies["rag_session"]
            assert (await c.get("/api/auth/me")).json()["email"] == ADMIN[0]
            assert (await c.post("/api/auth/logout")).status_code == 204
        # The cookie's value, replayed after the logout, is refused: the session ended server-side.
        async with client(app, cookies={"rag_session": token}) as replay:
            assert (await replay.get("/api/auth/me")).status_code == 401
        async with client(app, base_url="https://backend") as tls:  # the request came over https
            r = await tls.post("/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
            assert "secure" in _cookie_attributes(r)
    async with app_running(settings_for(tmp_path, cookie_secure=True, session_ttl_s=600)) as app:
        async with client(app) as c:  # a TLS proxy in front says so with COOKIE_SECURE
            r = await c.post("/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
            flags = _cookie_attributes(r)
            assert "secure" in flags and flags["max-age"] == "600"


async def test_failed_sign_ins_are_throttled_and_never_tell_whether_the_account_exists(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, login_max_failures=3, login_max_failures_per_address=8, login_window_s=60)
    async with app_running(settings) as app, client(app) as c:
        admin = await signed_in(app, *ADMIN)
        await _users(admin, victim="editor")

        async def attempt(email: str, password: str) -> tuple[httpx.Response, float]:
            start = time.perf_counter()
            r = await c.post("/api/auth/login", json={"email": email, "password": password})
            return r, time.perf_counter() - start

        known = [await attempt("victim@example.test", "wrong-password") for _ in range(3)]
        unknown = [await attempt(f"ghost{n}@example.test", "wrong-password") for n in range(3)]
        # Same status, same body for a wrong password and an account that does not exist ...
        assert {(r.status_code, r.text) for r, _ in known + unknown} == {
            (401, '{"error":"wrong e-mail or password","error_type":"auth"}')
        }
        # ... and similar timing: the unknown e-mail is checked against a dummy Argon2 hash too.
        ratio = statistics.median(t for _, t in unknown) / statistics.median(t for _, t in known)
        assert 0.33 < ratio < 3, ratio
        # The account has had 3 failures: now even its right password gets 429 until the window ends.
        r, _ = await attempt("victim@example.test", PASSWORD)
        assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60
        assert r.json()["error_type"] == "throttled"
        # An unknown e-mail is throttled the same way (its counter exists whether or not the account does).
        for _ in range(2):
            await attempt("ghost-x@example.test", "nope-nope")
        # The address has had 3 + 3 + 2 = 8 failures: any account from it is refused now.
        await _users(admin, other="viewer")
        r, _ = await attempt("other@example.test", PASSWORD)
        assert r.status_code == 429, r.text
        await admin.aclose()


async def test_a_signed_in_cookie_sent_from_another_site_cannot_write(tmp_path: Path) -> None:
    async with app_running(settings_for(tmp_path)) as app:
        admin = await signed_in(app, *ADMIN)
        foreign = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
        r = await admin.post("/api/collections", json={"name": "csrf"}, headers=foreign)
        assert r.status_code == 403 and r.json()["error_type"] == "forbidden"
        r = await admin.post("/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]}, headers=foreign)
        assert r.status_code == 403  # no login CSRF either
        assert (await admin.post("/api/collections", json={"name": "own"})).status_code == 201
        await admin.aclose()


async def test_keys_never_exceed_their_owner_and_viewers_cannot_create(tmp_path: Path) -> None:
    async with app_running(settings_for(tmp_path)) as app:
        admin = await signed_in(app, *ADMIN)
        await _users(admin, ed="editor", vi="viewer")
        ed = await signed_in(app, "ed@example.test", PASSWORD)
        vi = await signed_in(app, "vi@example.test", PASSWORD)
        # A viewer asks for a write or admin key: refused. An editor asks for admin: refused.
        for who, scope in ((vi, "write"), (vi, "admin"), (ed, "admin")):
            r = await who.post("/api/keys", json={"name": "climb", "scope": scope})
            assert r.status_code == 403, r.text
        read_key = (await ed.post("/api/keys", json={"name": "r", "scope": "read"})).json()
        write_key = (await ed.post("/api/keys", json={"name": "w", "scope": "write"})).json()
        assert read_key["token"].startswith("rag_") and "token" not in (await ed.get("/api/keys")).json()[0]
        # The token is shown once and stored hashed: the catalog holds no copy of it.
        rows = app.state.services.catalog._all("SELECT * FROM api_keys")
        assert all(read_key["token"] not in str(row) for row in rows)
        by_read = client(app, headers={"X-API-Key": read_key["token"]})
        by_write = client(app, headers={"Authorization": f"Bearer {write_key['token']}"})
        # A read key cannot mint a write key (it would climb above its own scope), nor create or upload.
        assert (await by_read.post("/api/keys", json={"name": "x", "scope": "write"})).status_code == 403
        assert (await by_read.post("/api/collections", json={"name": "nope"})).status_code == 403
        assert (await by_write.post("/api/collections", json={"name": "mine"})).status_code == 201
        files = {"files": ("a.txt", b"some words", "text/plain")}
        assert (await by_read.post("/api/documents", files=files, data={"collection": "mine"})).status_code == 403
        assert (await by_write.post("/api/documents", files=files, data={"collection": "mine"})).status_code == 202
        # Viewers create no collections, neither directly nor by uploading to a new name.
        assert (await vi.post("/api/collections", json={"name": "vc"})).status_code == 403
        assert (await vi.post("/api/documents", files=files, data={"collection": "vc2"})).status_code == 403
        # Demoting the editor to viewer demotes its write key at once.
        assert (await admin.patch("/api/users/ed@example.test", json={"role": "viewer"})).status_code == 200
        assert (await by_write.post("/api/documents", files=files, data={"collection": "mine"})).status_code == 403
        # An admin's write key is no admin: user management refused.
        admin_write = (await admin.post("/api/keys", json={"name": "aw", "scope": "write"})).json()["token"]
        async with client(app, headers={"X-API-Key": admin_write}) as aw:
            assert (await aw.get("/api/users")).status_code == 403
        # Revoked: refused on the next request; someone else's key id is "not found".
        assert (await vi.delete(f"/api/keys/{read_key['id']}")).status_code == 404
        assert (await ed.delete(f"/api/keys/{read_key['id']}")).status_code == 204
        assert (await by_read.get("/api/collections")).status_code == 401
        for c in (admin, ed, vi, by_read, by_write):
            await c.aclose()


async def test_guessing_collection_and_document_names_learns_nothing(tmp_path: Path) -> None:
    async with app_running(settings_for(tmp_path)) as app:
        admin = await signed_in(app, *ADMIN)
        await _users(admin, alice="editor", bob="editor")
        alice = await signed_in(app, "alice@example.test", PASSWORD)
        bob = await signed_in(app, "bob@example.test", PASSWORD)
        files = {"files": ("secret.txt", b"the merger closes on friday", "text/plain")}
        doc = (await alice.post("/api/documents", files=files, data={"collection": "secret"})).json()["documents"][0]
        # Every route answers bob about alice's collection exactly as about one that does not exist.
        for name in ("secret", "no-such-collection"):
            answers = {
                "documents": await bob.get(f"/api/documents?collection={name}"),
                "members": await bob.get(f"/api/collections/{name}/members"),
                "delete": await bob.delete(f"/api/collections/{name}"),
                "grant": await bob.put(
                    f"/api/collections/{name}/members", json={"email": "bob@example.test", "access": "write"}
                ),
                "query": await bob.post("/api/query", json={"query": "merger", "collection": name}),
                "upload": await bob.post("/api/documents", files=files, data={"collection": name}),
            }
            assert answers.pop("documents").json() == {"documents": [], "total": 0}
            shape = {k: (r.status_code, r.json().get("error", "").replace(name, "?")) for k, r in answers.items()}
            if name == "secret":
                secret_shape = shape
        assert {k: v for k, v in shape.items() if k != "upload"} == {
            k: v for k, v in secret_shape.items() if k != "upload"
        }
        assert secret_shape["upload"][0] == 404  # for the missing one, bob's upload simply creates it (202)
        assert all(status == 404 for status, _ in secret_shape.values())
        # Documents: another's id and a made-up id answer alike, on every document route.
        for doc_id in (doc["id"], "00000000-0000-0000-0000-000000000000"):
            for r in (
                await bob.get(f"/api/documents/{doc_id}"),
                await bob.delete(f"/api/documents/{doc_id}"),
                await bob.post(f"/api/documents/{doc_id}/retry"),
            ):
                assert (r.status_code, r.json()["error"]) == (404, f"document {doc_id} not found")
        listed = (await bob.get("/api/documents")).json()
        assert all(d["collection"] != "secret" for d in listed["documents"])
        assert "secret" not in [c["name"] for c in (await bob.get("/api/collections")).json()]
        # Once granted read, bob sees it, and still cannot change it.
        grant = {"email": "bob@example.test", "access": "read"}
        assert (await alice.put("/api/collections/secret/members", json=grant)).status_code == 200
        assert (await bob.get(f"/api/documents/{doc['id']}")).status_code == 200
        assert (await bob.delete(f"/api/documents/{doc['id']}")).status_code == 403
        # A deleted collection's grants die with it: a later collection of that name starts with none.
        assert (await alice.delete("/api/collections/secret")).status_code == 202
        catalog = app.state.services.catalog
        assert catalog._all("SELECT * FROM collection_members WHERE collection = 'secret'") == []
        for c in (admin, alice, bob):
            await c.aclose()


async def test_disabled_users_are_refused_at_once_and_admins_cannot_lock_themselves_out(tmp_path: Path) -> None:
    async with app_running(settings_for(tmp_path)) as app:
        admin = await signed_in(app, *ADMIN)
        await _users(admin, ed="editor")
        ed = await signed_in(app, "ed@example.test", PASSWORD)
        key = (await ed.post("/api/keys", json={"name": "k", "scope": "write"})).json()["token"]
        assert (await admin.patch("/api/users/ed@example.test", json={"disabled": True})).status_code == 200
        assert (await ed.get("/api/collections")).status_code == 401
        async with client(app, headers={"X-API-Key": key}) as by_key:
            assert (await by_key.get("/api/collections")).status_code == 401
        r = await client(app).post("/api/auth/login", json={"email": "ed@example.test", "password": PASSWORD})
        assert r.status_code == 401 and r.json()["error"] == "wrong e-mail or password"
        assert (await admin.patch(f"/api/users/{ADMIN[0]}", json={"disabled": True})).status_code == 403
        assert (await admin.patch(f"/api/users/{ADMIN[0]}", json={"role": "viewer"})).status_code == 403
        async with client(app, headers={"X-API-Key": OPERATOR_KEY}) as op:  # the operator key is admin too
            assert (await op.patch("/api/users/ed@example.test", json={"disabled": False})).status_code == 200
        for c in (admin, ed):
            await c.aclose()


def test_auth_mode_none_is_refused_on_a_public_address() -> None:
    with pytest.raises(ValidationError, match=r"AUTH_MODE=none .* BACKEND_HOST 0\.0\.0\.0 is not a loopback"):
        Settings(_env_file=None, backend_host="0.0.0.0")  # type: ignore[call-arg]
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert Settings(_env_file=None, backend_host=host).auth_mode == "none"  # type: ignore[call-arg]
    assert Settings(_env_file=None, backend_host="0.0.0.0", auth_mode="users").auth_mode == "users"  # type: ignore[call-arg]


def test_behind_a_trusted_proxy_the_cookie_and_the_throttle_follow_its_forwarded_headers(tmp_path: Path) -> None:
    """A real `rag-backend serve` (uvicorn) behind a proxy it trusts (FORWARDED_ALLOW_IPS: here the test itself, on
    127.0.0.1): X-Forwarded-Proto https makes the cookie Secure, X-Forwarded-For is the address sign-ins are
    counted against (one client's failures do not lock out the others behind the same proxy)."""
    from conftest import start_backend

    proc = start_backend(
        tmp_path, DEAD_URL, "proxied", AUTH_MODE="users", ADMIN_EMAIL=ADMIN[0], ADMIN_PASSWORD=ADMIN[1],
        FORWARDED_ALLOW_IPS="127.0.0.1", LOGIN_MAX_FAILURES="100", LOGIN_MAX_FAILURES_PER_ADDRESS="2",
    )  # fmt: skip
    try:
        with proc.client() as c:
            good = {"email": ADMIN[0], "password": ADMIN[1]}
            r = c.post("/api/auth/login", json=good, headers={"X-Forwarded-Proto": "https"})
            assert r.status_code == 204 and "secure" in _cookie_attributes(r)
            r = c.post("/api/auth/login", json=good)
            assert r.status_code == 204 and "secure" not in _cookie_attributes(r)
            bad = {"email": ADMIN[0], "password": "wrong-password"}
            for _ in range(2):
                assert (
                    c.post("/api/auth/login", json=bad, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 401
                )
            assert c.post("/api/auth/login", json=good, headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 429
            assert c.post("/api/auth/login", json=good, headers={"X-Forwarded-For": "198.51.100.9"}).status_code == 204
    finally:
        proc.stop()
