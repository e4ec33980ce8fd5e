"""One error shape for every failure, as ml-api: {"error": reason, "error_type": kind}."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("rag_backend")


class APIError(Exception):
    status = 500
    error_type = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(APIError):
    status, error_type = 400, "validation"


class NotFound(APIError):
    status, error_type = 404, "not_found"


class Conflict(APIError):
    status, error_type = 409, "conflict"


class TooLarge(APIError):
    status, error_type = 413, "too_large"


class Unsupported(APIError):
    status, error_type = 415, "unsupported_format"


class UpstreamUnavailable(APIError):
    """ml-api (or the embeddings API, or the store) cannot be reached: the client may retry later."""

    status, error_type = 503, "upstream_unavailable"


class UpstreamError(APIError):
    """The upstream answered, but with something we cannot use (4xx, malformed body)."""

    status, error_type = 502, "upstream_error"


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": message, "error_type": error_type})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _describe(errors: list[dict]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        headers = {"Retry-After": "5"} if exc.status == 503 else None
        return error_response(exc.status, exc.error_type, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if request.url.path == "/api/query" and content_type and content_type != "application/json":
            return error_response(415, "validation", "Content-Type must be application/json")
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "validation", f"request body is not valid JSON: {_describe(errors)}")
        return error_response(422, "validation", _describe(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        kind = {401: "auth", 404: "not_found", 405: "validation"}.get(exc.status_code, "validation")
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail = "request body could not be parsed (malformed JSON or multipart)"
        return error_response(exc.status_code, kind, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", f"internal error: {type(exc).__name__}")
