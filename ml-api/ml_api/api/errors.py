"""The edge's one error table: domain errors to (status, error_type), the way TEI's router maps its ErrorType.

Domain code raises `ml_api.errors` classes and knows no HTTP; this module is the only place a status code is
chosen for them. A failure leaves in the shape its route family's clients parse: TEI's {"error": reason,
"error_type": kind} (`api.wire.error_response`, shared word for word with the backend) everywhere, except
under /v1/ and /v2/, where OpenAI's {"error": {"message", "type", "param", "code"}} is what the openai client
(and vLLM, which serves the Cohere v2 routes the same way) reads into `APIError.message`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ml_api.api.wire import describe_validation, error_response
from ml_api.core.runtime import printable
from ml_api.errors import (
    BatchTooLarge,
    ClientGone,
    DeviceUnavailable,
    DomainError,
    InferenceFailed,
    InputTooLong,
    InvalidInput,
    ModelError,
    NotFound,
    Overloaded,
    Unhealthy,
    Unsupported,
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
    Unsupported: HttpError(501, "backend"),
    NotFound: HttpError(404, "validation"),  # this server, with this model, does not implement it
    ClientGone: HttpError(499, "validation"),  # nginx's "client closed request": only metrics and logs see it
    # Startup stops on these two; should a request ever meet one, the service cannot serve it now.
    ModelError: HttpError(503, "unhealthy"),
    DeviceUnavailable: HttpError(503, "unhealthy"),
}
# OpenAI's error `type` for each kind; `code` carries our kind itself (OpenAI's own codes, where one fits).
OPENAI_TYPES: dict[str, str] = {
    "validation": "invalid_request_error",
    "auth": "authentication_error",
    "overloaded": "rate_limit_error",
    "backend": "server_error",
    "unhealthy": "server_error",
}
OPENAI_CODES: dict[str, str] = {"auth": "invalid_api_key", "overloaded": "rate_limit_exceeded"}
OPENAI_PREFIXES = ("/v1/", "/v2/")
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


def error_for(
    path: str,
    status: int,
    error_type: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    retry_after: float | None = None,
    param: str | None = None,
) -> Response:
    """The error body in the shape of the route family `path` belongs to (see the module docstring)."""
    if not path.startswith(OPENAI_PREFIXES):
        return error_response(status, error_type, message, headers, retry_after)
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    error = {
        "message": message,
        "type": OPENAI_TYPES.get(error_type, "server_error"),
        "param": param,
        "code": OPENAI_CODES.get(error_type, error_type),
    }
    body = orjson.dumps({"error": error})
    return Response(body, status_code=status, media_type="application/json", headers=headers or None)


def domain_error_response(exc: DomainError, path: str = "/") -> Response:
    row = http_error(exc)
    retry_after = row.retry_after
    if retry_after is not None and isinstance(exc, Overloaded) and exc.retry_after_s is not None:
        retry_after = max(retry_after, math.ceil(exc.retry_after_s))
    return error_for(path, row.status, row.error_type, exc.message, retry_after=retry_after)


def _param(errors: list[dict]) -> str | None:
    """The field OpenAI's `param` names: the first failing location inside the body (`input`, `input.0`)."""
    loc = [str(p) for p in (errors[0].get("loc", ()) if errors else ()) if p != "body"]
    return ".".join(loc) or None


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
    async def _domain(request: Request, exc: DomainError) -> Response:
        return domain_error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        # A POST without a JSON Content-Type never gets here: the guard middleware answers it 415.
        errors, path = list(exc.errors()), request.url.path
        for err in errors:
            if err.get("type") == "json_invalid":
                where, why = err.get("loc", ("", "?"))[-1], (err.get("ctx") or {}).get("error", "decode error")
                return error_for(path, 400, "validation", f"request body is not valid JSON at character {where}: {why}")
        return error_for(path, 422, "validation", describe_validation(errors), param=_param(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        kind = "auth" if exc.status_code == 401 else "validation"
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            detail = _unparsable(exc.__cause__)
        else:
            detail = str(exc.detail)
        return error_for(request.url.path, exc.status_code, kind, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        reason = f"internal error: {type(exc).__name__}"
        return error_for(request.url.path, UNMAPPED.status, UNMAPPED.error_type, reason)
