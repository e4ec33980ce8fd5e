"""OIDC sign-in: authorization code with PKCE (S256) and a nonce, through Authlib's client, which reads the issuer's
discovery document, exchanges the code and validates the ID token (signature against the issuer's JWKS, iss, aud,
exp, nonce). A flow in progress (state, code verifier, nonce) waits in the catalog, so the callback may reach any
replica, and is used once.

The user is found by the provider's subject (issuer + sub) or created at first sign-in; the role comes from
OIDC_ROLE_CLAIM through OIDC_ROLE_MAP (the highest mapped value wins) at every sign-in where the provider sends that
claim, so a change of groups at the provider takes effect at the next sign-in; a provider that sends no such claim
leaves the role to the admins. A local account with the same verified e-mail is linked once.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from authlib.integrations.base_client import BaseApp, FrameworkIntegration
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client

from rag_backend.access.model import Forbidden, Role, Unauthenticated
from rag_backend.access.service import AccessService, normal_email
from rag_backend.core.config import Settings
from rag_backend.errors import InvalidInput, UpstreamUnavailable

log = logging.getLogger("rag_backend.access")

FLOW_TTL_S = 600.0  # the user has this long at the provider's sign-in page
RANK = {Role.VIEWER: 1, Role.EDITOR: 2, Role.ADMIN: 3}


class OidcFailed(Unauthenticated):
    """The provider refused the sign-in, or its answer did not validate (state, code, ID token)."""


class _Client(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """Authlib's async OpenID client on httpx, without a web framework's session (flows wait in the catalog)."""

    client_cls = AsyncOAuth2Client


class Oidc:
    def __init__(self, settings: Settings, access: AccessService) -> None:
        self.s, self.access = settings, access
        self.client: Any = _Client(
            FrameworkIntegration("oidc"),
            name="oidc",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",  # type: ignore[union-attr]
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256", "timeout": 10.0},
        )

    async def start(self, redirect_uri: str) -> str:
        """The provider's authorization URL to send the browser to."""
        nonce = secrets.token_urlsafe(24)
        try:
            auth = await self.client.create_authorization_url(redirect_uri, nonce=nonce)
        except Exception as exc:  # the discovery document could not be read
            raise UpstreamUnavailable(f"OIDC provider: {type(exc).__name__}: {exc}") from None
        store = self.access.store
        await self.access._run(store.add_flow, auth["state"], auth["code_verifier"], nonce, redirect_uri, FLOW_TTL_S)
        return str(auth["url"])

    async def finish(self, state: str, code: str) -> dict[str, Any]:
        """The signed-in user (created at first sign-in), from the callback's state and code."""
        flow = await self.access._run(self.access.store.take_flow, state)
        if flow is None:
            raise OidcFailed("sign-in expired or already used: start again")
        try:
            token = await self.client.fetch_access_token(
                redirect_uri=flow["redirect_uri"], code=code, code_verifier=flow["code_verifier"]
            )
            claims = dict(await self.client.parse_id_token(token, nonce=flow["nonce"]) or {})
        except Exception as exc:
            log.warning("oidc sign-in failed: %s: %s", type(exc).__name__, exc)
            raise OidcFailed(f"the provider's answer did not validate ({type(exc).__name__})") from None
        if not claims.get("sub"):
            raise OidcFailed("the provider sent no ID token")
        if self.s.oidc_role_claim not in claims or "email" not in claims:
            try:  # some providers (Keycloak without mappers, Google) put groups / e-mail in userinfo only
                claims = {**dict(await self.client.userinfo(token=token)), **claims}
            except Exception as exc:
                log.info("oidc userinfo unavailable: %s", exc)
        return await self._user(claims)

    def role_for(self, claims: dict[str, Any]) -> Role:
        value = claims.get(self.s.oidc_role_claim)
        values = [value] if isinstance(value, str) else [str(v) for v in value or ()]
        mapped = [Role(self.s.oidc_role_map[v]) for v in values if v in self.s.oidc_role_map]
        if mapped:
            return max(mapped, key=RANK.__getitem__)
        if not self.s.oidc_default_role:
            raise Forbidden(f"your account has no {self.s.oidc_role_claim} value that OIDC_ROLE_MAP grants a role")
        return Role(self.s.oidc_default_role)

    async def _user(self, claims: dict[str, Any]) -> dict[str, Any]:
        store, run = self.access.store, self.access._run
        subject = f"{self.s.oidc_issuer} {claims['sub']}"
        name = claims.get("name") or claims.get("preferred_username")
        user = await run(store.user_by_subject, subject)
        # The provider decides the role when it sends the claim; when it sends none (Google), a known user keeps the
        # role an admin gave it, and a new one gets OIDC_DEFAULT_ROLE.
        role = self.role_for(claims) if user is None or self.s.oidc_role_claim in claims else Role(user["role"])
        if user is None:
            try:
                email = normal_email(str(claims.get("email") or ""))
            except InvalidInput:
                raise OidcFailed("the provider sent no e-mail address (ask for the 'email' scope)") from None
            user = await run(store.user_by_email, email)
            if user is None:
                user = await run(store.create_user, email, role.value, None, name, subject)
                log.info("user created at first OIDC sign-in", extra={"fields": {"email": email, "role": role}})
            elif claims.get("email_verified") is True and user["oidc_subject"] is None:
                await run(store.update_user, email, oidc_subject=subject)
            else:
                raise OidcFailed(f"{email} already has an account here that the provider cannot sign in to")
        if user["disabled"]:
            raise OidcFailed("this account is disabled")
        return await run(store.update_user, user["email"], role=role.value)
