"""Pure-ASGI guard: API key on /api, upload body limit, request metrics by route template."""

from __future__ import annotations

import hmac
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_backend.core.errors import error_response
from rag_backend.core.metrics import REQUEST_LATENCY


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        path: str = scope["path"]
        headers = dict(scope["headers"])

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if path.startswith("/api") and self.api_key and not self._authorized(headers):
                response = error_response(
                    401, "auth", "missing or wrong API key (Authorization: Bearer <key> or X-API-Key)",
                    {"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
                await response(scope, receive, send_wrapper)
                return
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                await self._too_large(scope, receive, send_wrapper)
                return
            await self.app(scope, self._bounded(receive), send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUEST_LATENCY.labels(scope["method"], template, str(status)).observe(time.perf_counter() - start)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        auth = headers.get(b"authorization", b"")
        given = auth[7:] if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
        return bool(given) and hmac.compare_digest(given, self.api_key or b"")

    def _bounded(self, receive: Receive) -> Receive:
        """Counts streamed (chunked) bodies too; past the limit the app sees a disconnect."""
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

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        mb = self.max_body_bytes / 1024 / 1024
        await error_response(413, "too_large", f"request body over {mb:.0f} MB")(scope, receive, send)


class BodyTooLarge(Exception):
    """Raised inside the app's body reading; the error handler turns it into a 413."""
