"""Pure-ASGI guard: cross-site writes, API key on /api, request body limit, request metrics by route template.

Pure ASGI rather than BaseHTTPMiddleware, which would hide client disconnects from the streaming routes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_backend.api.errors import CrossOriginRefused, mapped_response
from rag_backend.api.wire import body_too_large, key_matches, unauthorized
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


def key_required(path: str) -> bool:
    """Whether a request to `path` must carry API_KEY (when one is set); the OpenAPI document asks this too."""
    return path.startswith(API_PREFIX)


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
        self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int, allowed_origins: Iterable[str] = ()
    ) -> None:
        self.app = app
        self.api_key = api_key
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
            if key_required(path) and not preflight and not key_matches(headers, self.api_key):
                await unauthorized()(scope, receive, send_wrapper)
                return
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
