"""Pure-ASGI guard: cross-site writes, who is calling /api (API key, user key or sign-in cookie: the Principal the
routes authorize), request body limit, request metrics by route template.

Pure ASGI rather than BaseHTTPMiddleware, which would hide client disconnects from the streaming routes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_backend.access.model import NOBODY, OPEN, OPERATOR, Principal
from rag_backend.api.errors import CrossOriginRefused, mapped_response
from rag_backend.api.wire import CHALLENGE, body_too_large, error_response, key_matches, presented_key, unauthorized
from rag_backend.catalog import CatalogUnavailable
from rag_backend.core.metrics import REQUEST_LATENCY

LIMIT_SETTING = "MAX_REQUEST_MB"
API_PREFIX = "/api"  # what the API key and the cross-site guard protect; /health, /ready, /metrics, docs stay open
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _host(netloc: str, scheme: str) -> str:
    """host[:port], lower case, without the scheme's default port (Origin omits it, a Host header may not)."""
    netloc = netloc.strip().lower()
    default = DEFAULT_PORTS.get(scheme, "")
    return netloc[: -len(default)] if default and netloc.endswith(default) else netloc


SESSION_COOKIE = "rag_session"
# What a caller without credentials may reach under /api: signing in, and what the sign-in page needs to know.
OPEN_API_PATHS = frozenset(
    {"/api/auth/login", "/api/auth/logout", "/api/auth/options", "/api/auth/oidc/login", "/api/auth/oidc/callback"}
)
SIGN_IN = (
    "not signed in: sign in (POST /api/auth/login, or the page) or send an API key "
    "(Authorization: Bearer <key> or X-API-Key: <key>)"
)


def key_required(path: str) -> bool:
    """Whether a request to `path` must carry credentials (API_KEY in AUTH_MODE=none when one is set, a user's key or
    session in AUTH_MODE=users); the OpenAPI document asks this too."""
    return path.startswith(API_PREFIX) and path not in OPEN_API_PATHS


def cross_origin_refusal(method: str, path: str, headers: dict[bytes, bytes], allowed: frozenset[str]) -> str | None:
    """Why a browser's state-changing /api request from another site is refused, or None to let it through.

    Any page the user visits can make their browser POST/DELETE here (a plain form, a no-CORS fetch) from
    inside their network, without needing to read the answer; with no API_KEY nothing else stops it. Browsers
    say where a request comes from (Origin, Sec-Fetch-Site) and a page can forge neither, nor add
    X-Forwarded-Host without a CORS preflight that fails. Clients that send neither (curl, servers) pass.
    """
    if method not in UNSAFE_METHODS or not path.startswith(API_PREFIX):
        return None
    raw_origin = headers.get(b"origin")
    origin = raw_origin.decode("latin-1").strip().rstrip("/") if raw_origin is not None else None
    if origin is not None and ("*" in allowed or origin.lower() in allowed):
        return None
    if headers.get(b"sec-fetch-site", b"").strip().lower() == b"cross-site":
        return (
            f"cross-site {method} refused (Sec-Fetch-Site: cross-site, Origin: {origin or 'none'}): "
            "only this server's own pages and origins listed in CORS_ALLOW_ORIGINS may change data"
        )
    if origin is None:
        return None
    own = (headers.get(b"x-forwarded-host") or headers.get(b"host") or b"").decode("latin-1").split(",")[0]
    try:
        parts = urlsplit(origin)
    except ValueError:  # not a URL at all: certainly not ours
        parts = None
    if parts is not None and parts.scheme in DEFAULT_PORTS and own:
        if _host(parts.netloc, parts.scheme) == _host(own, parts.scheme):
            return None
    return (
        f"cross-origin {method} refused: Origin {origin} is neither this server's own ({own or 'no Host'}) "
        "nor listed in CORS_ALLOW_ORIGINS"
    )


class BodyTooLarge(Exception):
    """Raised from the bounded receive when a streamed body passes the limit; the guard answers 413."""


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_body_bytes: int,
        allowed_origins: Iterable[str] = (),
        users: bool = False,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.users = users
        self.max_body_bytes = max_body_bytes
        self.allowed_origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False
        path: str = scope["path"]
        headers = dict(scope["headers"])

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            refusal = cross_origin_refusal(scope["method"], path, headers, self.allowed_origins)
            if refusal is not None:
                await mapped_response(CrossOriginRefused(refusal))(scope, receive, send_wrapper)
                return
            # A CORS preflight carries no credentials by design; CORSMiddleware answers it (or the router 405s).
            preflight = scope["method"] == "OPTIONS" and b"access-control-request-method" in headers
            if path.startswith(API_PREFIX) and not preflight:
                try:
                    principal = await self._principal(scope, headers)
                except CatalogUnavailable as exc:  # who is calling cannot be known now: 503, not a 401
                    await mapped_response(exc)(scope, receive, send_wrapper)
                    return
                if principal is None and key_required(path):
                    if self.users:
                        await error_response(401, "auth", SIGN_IN, CHALLENGE)(scope, receive, send_wrapper)
                    else:
                        await unauthorized()(scope, receive, send_wrapper)
                    return
                scope.setdefault("state", {})["principal"] = principal or NOBODY
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await body_too_large(LIMIT_SETTING, self.max_body_bytes)(scope, receive, send_wrapper)
                return
            try:
                await self.app(scope, self._bounded(receive), send_wrapper)
            except BodyTooLarge:
                if started:
                    raise
                await body_too_large(LIMIT_SETTING, self.max_body_bytes)(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUEST_LATENCY.labels(scope["method"], template, str(status)).observe(time.perf_counter() - start)

    async def _principal(self, scope: Scope, headers: dict[bytes, bytes]) -> Principal | None:
        """Who sent the request, or None when what it presented is missing or not valid (now: a key revoked or a
        user disabled a moment ago on another replica is refused here, looked up in the catalog)."""
        if not self.users:
            return (OPERATOR if self.api_key else OPEN) if key_matches(headers, self.api_key) else None
        access = scope["app"].state.services.access
        key = presented_key(headers)
        if key:
            return await access.from_key(key.decode("latin-1"))
        cookie = headers.get(b"cookie")
        token = cookie_parser(cookie.decode("latin-1")).get(SESSION_COOKIE) if cookie else None
        return await access.from_session(token) if token else None

    def _bounded(self, receive: Receive) -> Receive:
        """Counts streamed (chunked) bodies too: past the limit, reading the body raises BodyTooLarge."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        return wrapped
