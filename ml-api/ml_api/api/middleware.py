"""Pure ASGI middleware (no BaseHTTPMiddleware: it would hide client disconnects from the routes)."""

from __future__ import annotations

import time

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml_api.api.errors import error_for
from ml_api.api.wire import CHALLENGE, UNAUTHORIZED, key_matches, too_large_reason
from ml_api.core import metrics

OPEN_PATHS = {"/health", "/live", "/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
DOCS_ASSETS = "/static-offline-docs/"  # Swagger UI's files, served from the fastapi-offline package
# Every POST route: each takes a JSON body (metrics label known routes by path, the rest as "other").
JSON_ROUTES = {
    *("/", "/embed", "/embed_all", "/rerank", "/tokenize", "/decode"),  # TEI
    *("/v1/embeddings", "/v1/rerank", "/v1/embed", "/v2/embed", "/v2/rerank"),  # OpenAI, Cohere v1/v2, Jina
}
KNOWN_ROUTES = {*JSON_ROUTES, "/health", "/live", "/ready", "/info", "/metrics", "/v1/models"}
NOT_JSON = "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')"


def is_json(content_type: bytes | None) -> bool:
    """application/json or any +json type; a missing header is not JSON (README: 415, as TEI's clients expect)."""
    if not content_type:
        return False
    main = content_type.split(b";")[0].strip().lower()
    return main == b"application/json" or (main.startswith(b"application/") and main.endswith(b"+json"))


def _has_length(scope: Scope) -> bool:
    return any(name == b"content-length" for name, _ in scope.get("headers", []))


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` first, then the connection's own messages (the disconnect the routes watch)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the routes expect

    return replay


class GuardMiddleware:
    """Auth, payload limit, per-route metrics and the x-total-time header, in one pass."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_request_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        route = path if path in KNOWN_ROUTES else "other"
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-total-time", f"{(time.perf_counter() - started) * 1000:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            rejection = self._reject(scope, path)
            if rejection is not None:
                await rejection(scope, receive, send_wrapper)
                return
            if scope.get("method") in ("POST", "PUT", "PATCH") and not _has_length(scope):
                # A chunked body has no length to check up front: read it here, bounded, then replay it.
                body = await self._read_bounded(receive)
                if body is None:
                    await self._too_large(path)(scope, receive, send_wrapper)
                    return
                receive = replay(body, receive)
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.series(metrics.REQUESTS, route, str(status_holder["status"])).inc()
            metrics.series(metrics.REQUEST_DURATION, route).observe(time.perf_counter() - started)

    async def _read_bounded(self, receive: Receive) -> bytes | None:
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _too_large(self, path: str) -> Response:
        return error_for(path, 413, "validation", too_large_reason("MAX_REQUEST_BYTES", self.max_bytes))

    def _reject(self, scope: Scope, path: str) -> Response | None:
        headers = dict(scope.get("headers", []))
        open_path = path in OPEN_PATHS or path.startswith(DOCS_ASSETS)
        guarded = not open_path and scope.get("method") != "OPTIONS"
        if guarded and not key_matches(headers, self.api_key):
            return error_for(path, 401, "auth", UNAUTHORIZED, headers=CHALLENGE)
        if scope.get("method") == "POST" and path in JSON_ROUTES and not is_json(headers.get(b"content-type")):
            return error_for(path, 415, "validation", NOT_JSON)
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                return error_for(path, 400, "validation", "invalid Content-Length header")
            if too_big:
                return self._too_large(path)
        return None
