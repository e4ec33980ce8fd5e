"""OIDC sign-in end to end against a real OpenID provider started here (PyPI oidc-provider-mock: Authlib's
authorization server, signed ID tokens, a JWKS, discovery), never a hand-made fake: the browser's steps are played
with HTTP requests (our login redirect, the provider's sign-in form, the callback back to us)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from access_harness import ADMIN, app_running, client, settings_for, signed_in
from oidc_provider_mock import run_server_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def set_claims(provider: str, sub: str, **claims: object) -> None:
    httpx.put(f"{provider}/users/{sub}", json=claims).raise_for_status()


async def sign_in(app: object, provider: str, sub: str) -> tuple[httpx.AsyncClient, httpx.Response]:
    """Our login -> the provider's form, submitted as `sub` -> our callback. Returns the browser and the callback's
    answer."""
    browser = client(app)  # type: ignore[arg-type]
    start = await browser.get("/api/auth/oidc/login")
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(provider) and query["code_challenge_method"] == ["S256"]  # PKCE
    assert query["code_challenge"][0] and query["nonce"][0] and query["state"][0]
    assert query["redirect_uri"] == ["http://backend/api/auth/oidc/callback"]
    async with httpx.AsyncClient() as user_at_provider:  # the provider's sign-in form, submitted as `sub`
        form = await user_at_provider.post(authorize, data={"sub": sub})
    assert form.status_code == 302, form.text
    back = urlsplit(form.headers["location"])
    return browser, await browser.get(f"{back.path}?{back.query}")


def oidc_settings(tmp: Path, provider: str, **overrides: object):  # type: ignore[no-untyped-def]
    return settings_for(
        tmp,
        oidc_issuer=provider,
        oidc_client_id="rag-backend",
        oidc_client_secret="client-secret",
        oidc_role_claim="groups",
        oidc_role_map={"rag-admins": "admin", "rag-editors": "editor"},
        oidc_name="Example IdP",
        **overrides,
    )


async def test_sign_in_creates_the_user_with_the_mapped_role(tmp_path: Path, provider: str) -> None:
    async with app_running(oidc_settings(tmp_path, provider)) as app:
        options = (await client(app).get("/api/auth/options")).json()
        assert options["oidc"] == {"name": "Example IdP", "login_url": "/api/auth/oidc/login"}

        set_claims(provider, "alice-sub", email="Alice@Example.test", email_verified=True, name="Alice",
                   groups=["staff", "rag-editors"])  # fmt: skip
        browser, done = await sign_in(app, provider, "alice-sub")
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert "httponly" in done.headers["set-cookie"].lower()
        me = (await browser.get("/api/auth/me")).json()
        assert me == {"email": "alice@example.test", "name": "Alice", "role": "editor", "via": "session",
                      "scope": "write"}  # fmt: skip
        assert (await browser.post("/api/collections", json={"name": "alices"})).status_code == 201

        # The same callback again (a replayed code and state): the flow was used once, refused.
        replay = await client(app).get(done.request.url.raw_path.decode())
        assert replay.status_code == 303 and "auth_error=" in replay.headers["location"]
        assert "rag_session" not in replay.headers.get("set-cookie", "")

        # No mapped group: the default role (viewer). The group changes at the provider: the next sign-in follows.
        set_claims(provider, "bob-sub", email="bob@example.test", email_verified=True, groups=["staff"])
        bob, _ = await sign_in(app, provider, "bob-sub")
        assert (await bob.get("/api/auth/me")).json()["role"] == "viewer"
        set_claims(provider, "bob-sub", email="bob@example.test", email_verified=True, groups="rag-admins")
        bob, _ = await sign_in(app, provider, "bob-sub")
        assert (await bob.get("/api/auth/me")).json()["role"] == "admin"
        users = {u["email"]: u for u in (await bob.get("/api/users")).json()}
        assert users["alice@example.test"]["sso"] and users["bob@example.test"]["role"] == "admin"

        # A provider that sends no role claim at all (Google): a new user gets the default role, and the role an
        # admin gives it afterwards survives its next sign-in.
        set_claims(provider, "gina-sub", email="gina@example.test", email_verified=True)
        gina, _ = await sign_in(app, provider, "gina-sub")
        assert (await gina.get("/api/auth/me")).json()["role"] == "viewer"
        assert (await bob.patch("/api/users/gina@example.test", json={"role": "editor"})).status_code == 200
        gina, _ = await sign_in(app, provider, "gina-sub")
        assert (await gina.get("/api/auth/me")).json()["role"] == "editor"


async def test_refused_sign_ins(tmp_path: Path, provider: str) -> None:
    async with app_running(oidc_settings(tmp_path, provider, oidc_default_role="")) as app:
        # A forged state (a callback the backend never started) signs nobody in.
        forged = await client(app).get("/api/auth/oidc/callback?state=forged&code=whatever")
        assert forged.status_code == 303 and "auth_error=" in forged.headers["location"]
        assert "set-cookie" not in forged.headers
        # The provider says "denied".
        denied = await client(app).get("/api/auth/oidc/callback?error=access_denied")
        assert "auth_error=" in denied.headers["location"]
        # OIDC_DEFAULT_ROLE empty: an account with no mapped group is refused.
        set_claims(provider, "carol-sub", email="carol@example.test", email_verified=True, groups=["staff"])
        _, done = await sign_in(app, provider, "carol-sub")
        assert "auth_error=" in done.headers["location"] and "set-cookie" not in done.headers
        # A local account with the same e-mail, unverified at the provider: not taken over.
        admin = await signed_in(app, *ADMIN)
        local = {"email": "dave@example.test", "role": "viewer", "password": "a-good-password"}
        assert (await admin.post("/api/users", json=local)).status_code == 201
        set_claims(provider, "dave-sub", email="dave@example.test", email_verified=False, groups=["rag-editors"])
        _, done = await sign_in(app, provider, "dave-sub")
        assert "auth_error=" in done.headers["location"] and "set-cookie" not in done.headers
        # A disabled user cannot come back through the provider.
        set_claims(provider, "erin-sub", email="erin@example.test", email_verified=True, groups=["rag-editors"])
        _, done = await sign_in(app, provider, "erin-sub")
        assert "set-cookie" in done.headers
        assert (await admin.patch("/api/users/erin@example.test", json={"disabled": True})).status_code == 200
        _, done = await sign_in(app, provider, "erin-sub")
        assert "auth_error=" in done.headers["location"] and "set-cookie" not in done.headers
        await admin.aclose()
