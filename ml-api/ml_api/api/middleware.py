"""Pure ASGI middleware (no BaseHTTPMiddleware: it would hide client disconnects from the routes)."""

from __future__ import annotations

import hmac
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ml_api.core import metrics
from ml_api.core.errors import error_response

OPEN_PATHS = {"/health", "/metrics", "/docs", "/redoc", "/openapi.json"}
KNOWN_ROUTES = {"/embed", "/rerank", "/v1/embeddings", "/v1/rerank", "/health", "/info", "/metrics"}


class TooLarge(Exception):
    pass


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
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_bytes:
                        raise TooLarge
                return message

            try:
                await self.app(scope, limited_receive, send_wrapper)
            except TooLarge:
                await self._too_large()(scope, receive, send_wrapper)
        finally:
            metrics.REQUESTS.labels(route, str(status_holder["status"])).inc()
            metrics.REQUEST_DURATION.labels(route).observe(time.perf_counter() - started)

    def _too_large(self):  # noqa: ANN202
        return error_response(413, "validation", f"request body exceeds MAX_REQUEST_BYTES={self.max_bytes}")

    def _reject(self, scope: Scope, path: str):  # noqa: ANN202
        headers = dict(scope.get("headers", []))
        if self.api_key and path not in OPEN_PATHS and scope.get("method") != "OPTIONS":
            auth = headers.get(b"authorization", b"").decode("latin-1")
            token = auth[7:] if auth[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), self.api_key.encode()):
                return error_response(401, "auth", "missing or wrong API key: send Authorization: Bearer <API_KEY>",
                                      headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_bytes
            except ValueError:
                return error_response(400, "validation", "invalid Content-Length header")
            if too_big:
                return self._too_large()
        return None
