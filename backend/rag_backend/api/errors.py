"""The one table from exceptions to HTTP answers; nothing below the API layer knows a status code.

Domain code raises `rag_backend.errors` classes (parsing's errors subclass them); the store, the catalog (SQLite),
the cache (Redis), the LLM chain and the HTTP clients raise their own. Each class that can reach a route has a row
here, found by walking the exception's MRO so a subclass inherits its parent's row. Anything else is a bug: a 500
"internal" that names only the class.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from rag_backend import errors
from rag_backend.access.model import Forbidden, Throttled, Unauthenticated
from rag_backend.api.wire import describe_validation, error_response
from rag_backend.catalog import CatalogUnavailable
from rag_backend.llm import ProviderFailed, ProviderRefused
from rag_backend.redaction import Sensitive
from rag_backend.store import DimensionMismatch, StoreError

log = logging.getLogger("rag_backend.api")

RETRY_AFTER_S = 5.0  # what a 503 tells clients: long enough for a restart, short enough to feel responsive
MAX_RETRY_AFTER_S = 3600.0  # an upstream's own Retry-After is passed through up to this


class ErrorType(StrEnum):
    """Every `error_type` an error body can carry: clients switch on it, and the OpenAPI document's ErrorBody
    enum is this list, so a kind added here (and only here) reaches the page's generated types."""

    VALIDATION = "validation"  # the request is malformed or breaks the schema (400, 405, 413 body, 415, 422)
    AUTH = "auth"  # no valid credentials (API key, user key or sign-in), or a sign-in refused
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    TIMEOUT = "timeout"
    THROTTLED = "throttled"  # too many failed sign-ins (429 with Retry-After)
    INTERNAL = "internal"  # a bug: no row in the table


class CrossOriginRefused(Exception):
    """A state-changing /api request sent by a browser from another site (raised by the guard middleware)."""


@dataclass(frozen=True, slots=True)
class Row:
    """How one exception class answers. `reason` prefixes messages that do not say which dependency failed."""

    status: int
    error_type: ErrorType
    reason: str | None = None
    retry_after: float | None = None


ERRORS: dict[type[BaseException], Row] = {
    # Domain errors: their message is written for the user.
    errors.InvalidInput: Row(400, ErrorType.VALIDATION),
    errors.NotFound: Row(404, ErrorType.NOT_FOUND),
    errors.Conflict: Row(409, ErrorType.CONFLICT),
    errors.TooLarge: Row(413, ErrorType.TOO_LARGE),
    errors.UnsupportedFormat: Row(415, ErrorType.UNSUPPORTED_FORMAT),
    errors.UpstreamError: Row(502, ErrorType.UPSTREAM_ERROR),
    errors.UpstreamUnavailable: Row(503, ErrorType.UPSTREAM_UNAVAILABLE, retry_after=RETRY_AFTER_S),
    errors.DeadlineExceeded: Row(504, ErrorType.TIMEOUT),
    # Access control (rag_backend.access): who is calling, and what they may do.
    Unauthenticated: Row(401, ErrorType.AUTH),
    Forbidden: Row(403, ErrorType.FORBIDDEN),
    Throttled: Row(429, ErrorType.THROTTLED, retry_after=60.0),
    # The HTTP edge's own refusals.
    CrossOriginRefused: Row(403, ErrorType.FORBIDDEN),
    # The vector store: a dimension clash is the data's state, anything else an outage of the store.
    DimensionMismatch: Row(409, ErrorType.CONFLICT, "vector store"),
    StoreError: Row(503, ErrorType.UPSTREAM_UNAVAILABLE, "vector store unavailable", RETRY_AFTER_S),
    # The catalog: its database unreachable, locked past the busy timeout, out of disk, failing I/O.
    CatalogUnavailable: Row(503, ErrorType.UPSTREAM_UNAVAILABLE, "catalog unavailable", RETRY_AFTER_S),
    # The cache swallows Redis failures (a miss); a RedisError that still escapes is an outage, not a bug report.
    RedisError: Row(503, ErrorType.UPSTREAM_UNAVAILABLE, "cache unavailable", RETRY_AFTER_S),
    # The LLM chain falls back past these (down to extractive answers); one that still escapes is the provider's.
    ProviderFailed: Row(503, ErrorType.UPSTREAM_UNAVAILABLE, "LLM provider unavailable", RETRY_AFTER_S),
    ProviderRefused: Row(502, ErrorType.UPSTREAM_ERROR, "LLM provider refused the request"),
    # Raw httpx errors that escaped a client wrapper: no answer at all, or an answer we could not use.
    httpx.TransportError: Row(503, ErrorType.UPSTREAM_UNAVAILABLE, "upstream unreachable", RETRY_AFTER_S),
    httpx.HTTPError: Row(502, ErrorType.UPSTREAM_ERROR, "upstream request failed"),
    httpx.InvalidURL: Row(502, ErrorType.UPSTREAM_ERROR, "upstream URL is invalid"),
}


@dataclass(frozen=True, slots=True)
class Mapped:
    """An exception in HTTP terms: what the error handler, the upload's per-file items and SSE events report."""

    status: int
    error_type: ErrorType
    message: str
    retry_after: float | None = None


def row_for(cls: type[BaseException]) -> Row | None:
    for klass in cls.__mro__:
        if (row := ERRORS.get(klass)) is not None:
            return row
    return None


ANYONE = Sensitive()  # nothing configured: any URL, absolute path and URL password is still hidden


def classify(exc: BaseException, sensitive: Sensitive = ANYONE) -> Mapped:
    """The exception's answer. Its message is what a caller sees: keys, passwords, internal URLs and paths hidden
    (`sensitive`: the configured ones; any URL or absolute path either way)."""
    row = row_for(type(exc))
    if row is None:
        return Mapped(500, ErrorType.INTERNAL, f"internal error: {type(exc).__name__}")
    text = exc.message if isinstance(exc, errors.DomainError) else str(exc).strip()
    if not type(exc).__module__.startswith("rag_backend"):  # a library's message needs its class to make sense
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    message = f"{row.reason}: {text}" if row.reason else text
    return Mapped(row.status, row.error_type, sensitive.hide(message), _retry_after(exc, row))


def _retry_after(exc: BaseException, row: Row) -> float | None:
    """The row's default, unless the error carries a real figure (`exc.retry_after`: an upstream's own
    Retry-After, a queue's drain time), which is what the client is then told."""
    if row.retry_after is None:
        return None
    given = getattr(exc, "retry_after", None)
    if isinstance(given, int | float) and not isinstance(given, bool) and 0 < given < float("inf"):
        return min(float(given), MAX_RETRY_AFTER_S)
    return row.retry_after


def sensitive_of(request: Request) -> Sensitive:
    """What the app hides in its errors (create_app puts it on app.state)."""
    return getattr(request.app.state, "sensitive", None) or ANYONE


def mapped_response(exc: BaseException, sensitive: Sensitive = ANYONE) -> Response:
    m = classify(exc, sensitive)
    headers = {"WWW-Authenticate": "Bearer"} if m.status == 401 else None
    return error_response(m.status, m.error_type, m.message, headers, retry_after=m.retry_after)


async def _mapped(request: Request, exc: Exception) -> Response:
    response = mapped_response(exc, sensitive_of(request))
    if response.status_code >= 500:  # a dependency is down: worth a line in the log, without a traceback
        log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return response


# Route templates whose body is JSON: one that is not JSON gets 415.
JSON_BODY_PATHS = frozenset(
    {"/api/query", "/api/query/stream", "/api/collections", "/api/auth/login", "/api/users", "/api/users/{email}",
     "/api/keys", "/api/collections/{name}/members", "/api/conversations", "/api/conversations/{conversation_id}",
     "/api/conversations/{conversation_id}/messages/{message_id}/feedback"}
)  # fmt: skip
JSON_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errs = list(exc.errors())
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    template = getattr(request.scope.get("route"), "path", request.url.path)
    if request.method in JSON_METHODS and template in JSON_BODY_PATHS and not is_json:
        sent = f"got {content_type}" if content_type else "none was sent"
        return error_response(415, ErrorType.VALIDATION, f"Content-Type must be application/json ({sent})")
    if any(e.get("type") == "json_invalid" for e in errs):
        reason = f"request body is not valid JSON: {describe_validation(errs)}"
        return error_response(400, ErrorType.VALIDATION, reason)
    return error_response(422, ErrorType.VALIDATION, describe_validation(errs))


HTTP_KINDS = {401: ErrorType.AUTH, 404: ErrorType.NOT_FOUND}  # Starlette's own errors; any other is "validation"


async def _http(_: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown route, wrong method, unparsable body) in the same shape."""
    assert isinstance(exc, StarletteHTTPException)
    kind = HTTP_KINDS.get(exc.status_code, ErrorType.VALIDATION)
    detail = str(exc.detail)
    if exc.status_code == 400 and "parsing the body" in detail:
        detail = "request body could not be parsed (malformed JSON or multipart)"
    return error_response(exc.status_code, kind, detail, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Last resort (outside the routes' handlers, e.g. raised in middleware): mapped if it has a row."""
    if row_for(type(exc)) is not None:
        return await _mapped(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return mapped_response(exc, sensitive_of(request))


def install_error_handlers(app: FastAPI) -> None:
    for cls in ERRORS:
        app.add_exception_handler(cls, _mapped)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
