"""A shortcut past FastAPI's routing, dependency solving and body parsing for the latency-critical JSON routes.

For one short query those layers cost more than everything else the server adds (about 0.3 ms of 2 busy cores
per request, measured: docs/benchmarks.md#single-short-text-latency). Here a body for a listed route is
parsed by orjson and validated against the route's own request model and handed to the
route's own handler, so the answer is the route's. Whatever this path does not recognise (a body that does not
validate, a query string other than `?model=`, no engine yet) goes on to FastAPI unchanged with the body
replayed, so every error answer still comes from the one place that writes it today.

The guard middleware (auth, size limits, Content-Type, metrics, x-total-time) and CORS still run outside this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ml_api.api.errors import domain_error_response
from ml_api.api.middleware import replay
from ml_api.errors import DomainError

Handler = Callable[[Any, Request, Any, str | None], Awaitable[Response]]


class FastRoute(NamedTuple):
    """A POST route's request model and handler: handler(body, request, engine, model from `?model=` or None)."""

    model: type[BaseModel]
    handler: Handler
    model_query: bool = True  # the route reads `?model=` (TEI's routes); otherwise any query string goes to FastAPI


def _model_query(query: bytes) -> tuple[bool, str | None]:
    """(recognised, model): no query string, or exactly one non-empty `model=`; anything else is FastAPI's."""
    if not query:
        return True, None
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(pairs) == 1 and pairs[0][0] == "model" and pairs[0][1]:
        return True, pairs[0][1]
    return False, None


class FastRoutes:
    """Pure ASGI: answers the listed POST routes itself when it can, else passes the request on untouched."""

    def __init__(self, app: ASGIApp, routes: dict[str, FastRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        engine = getattr(scope["app"].state, "engine", None)
        query = scope.get("query_string", b"")
        known, model = _model_query(query) if route.model_query else (not query, None)
        if engine is None or not known:
            await self.app(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            return  # the client left while sending; there is no one to answer
        try:
            # orjson accepts a subset of what FastAPI's json.loads does (no 4300-digit or 64-bit-overflowing
            # integers, no NaN, no lone surrogates), and python-mode validation is FastAPI's own: what passes
            # here is what FastAPI would have passed, unchanged.
            parsed = route.model.model_validate(orjson.loads(body))
        except (orjson.JSONDecodeError, ValidationError):
            await self.app(scope, replay(body, receive), send)  # FastAPI writes the 4xx, as for every route
            return
        try:
            response = await route.handler(parsed, Request(scope, receive), engine, model)
        except DomainError as exc:
            response = domain_error_response(exc, scope["path"])
        await response(scope, receive, send)

    @staticmethod
    async def _read(receive: Receive) -> bytes | None:
        """The whole body (the guard middleware has already bounded its size); None on a disconnect."""
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        return b"".join(chunks)
