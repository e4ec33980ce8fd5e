"""Pure-ASGI guard: API key on /api, request body limit, request metrics by route template.

Pure ASGI rather than BaseHTTPMiddleware, which would hide client disconnects from the streaming routes.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_backend.core.metrics import REQUEST_LATENCY
from rag_backend.core.runtime import body_too_large, key_matches, unauthorized

LIMIT_SETTING = "MAX_REQUEST_MB"


class BodyTooLarge(Exception):
    """Raised from the bounded receive when a streamed body passes the limit; the guard answers 413."""


class GuardMiddleware:
    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

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
            if path.startswith("/api") and not key_matches(headers, self.api_key):
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
