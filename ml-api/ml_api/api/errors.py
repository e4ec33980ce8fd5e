"""The edge's one error table: domain errors to (status, error_type), the way TEI's router maps its ErrorType.

Domain code raises `ml_api.errors` classes and knows no HTTP; this module is the only place a status code is
chosen for them. Every failure, ours or the framework's, leaves in one shape: {"error": reason, "error_type":
kind} (`core.runtime.error_response`, shared word for word with the backend).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ml_api.core.runtime import describe_validation, error_response, printable
from ml_api.errors import (
    BatchTooLarge,
    ClientGone,
    DeviceUnavailable,
    DomainError,
    InferenceFailed,
    InputTooLong,
    InvalidInput,
    ModelError,
    Overloaded,
    Unhealthy,
)

ErrorType = Literal["validation", "overloaded", "backend", "unhealthy", "auth"]


class HttpError(NamedTuple):
    status: int
    error_type: ErrorType
    retry_after: float | None = None  # seconds, sent as Retry-After


ERRORS: dict[type[DomainError], HttpError] = {
    InvalidInput: HttpError(422, "validation"),
    InputTooLong: HttpError(413, "validation"),
    BatchTooLarge: HttpError(413, "validation"),
    Overloaded: HttpError(429, "overloaded", retry_after=1),  # at least; the engine's drain estimate when longer
    InferenceFailed: HttpError(500, "backend"),  # 503 when out of memory: see OUT_OF_MEMORY
    Unhealthy: HttpError(503, "unhealthy"),
    ClientGone: HttpError(499, "validation"),  # nginx's "client closed request": only metrics and logs see it
    # Startup stops on these two; should a request ever meet one, the service cannot serve it now.
    ModelError: HttpError(503, "unhealthy"),
    DeviceUnavailable: HttpError(503, "unhealthy"),
}
# A batch that ran out of memory has already been split down to single items; what still fails may pass later.
OUT_OF_MEMORY = HttpError(503, "backend")
UNMAPPED = HttpError(500, "backend")


def http_error(exc: DomainError) -> HttpError:
    """The row for `exc`: its own class first, then its nearest mapped base."""
    if isinstance(exc, InferenceFailed) and exc.out_of_memory:
        return OUT_OF_MEMORY
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            return ERRORS[cls]
    return UNMAPPED


def domain_error_response(exc: DomainError) -> Response:
    row = http_error(exc)
    retry_after = row.retry_after
    if retry_after is not None and isinstance(exc, Overloaded) and exc.retry_after_s is not None:
        retry_after = max(retry_after, math.ceil(exc.retry_after_s))
    return error_response(row.status, row.error_type, exc.message, retry_after=retry_after)


def _unparsable(cause: BaseException | None) -> str:
    """Why the JSON parser gave up on a body (FastAPI only says "error parsing the body")."""
    if isinstance(cause, UnicodeDecodeError):
        return f"request body is not valid UTF-8: byte 0x{cause.object[cause.start]:02x} at offset {cause.start}"
    if isinstance(cause, RecursionError):
        return "request body is not valid JSON: nested too deeply"
    if isinstance(cause, ValueError):  # e.g. an integer past Python's 4300-digit conversion limit
        return f"request body is not valid JSON: {printable(str(cause))[:200]}"
    return "request body is not valid UTF-8 JSON"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> Response:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        # A POST without a JSON Content-Type never gets here: the guard middleware answers it 415.
        errors = list(exc.errors())
        for err in errors:
            if err.get("type") == "json_invalid":
                where, why = err.get("loc", ("", "?"))[-1], (err.get("ctx") or {}).get("error", "decode error")
                return error_response(400, "validation", f"request body is not valid JSON at character {where}: {why}")
        return error_response(422, "validation", describe_validation(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        kind = "auth" if exc.status_code == 401 else "validation"
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            detail = _unparsable(exc.__cause__)
        else:
            detail = str(exc.detail)
        return error_response(exc.status_code, kind, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return error_response(UNMAPPED.status, UNMAPPED.error_type, f"internal error: {type(exc).__name__}")
