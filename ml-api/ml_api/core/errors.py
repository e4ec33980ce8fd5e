"""One error shape for every failure: {"error": reason, "error_type": kind}, TEI-style."""

from __future__ import annotations

from typing import Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

ErrorType = Literal["validation", "overloaded", "backend", "unhealthy", "auth"]


class APIError(Exception):
    def __init__(self, status: int, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class ValidationFailed(APIError):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(status, "validation", message)


class Overloaded(APIError):
    def __init__(self, message: str = "model is overloaded, retry later") -> None:
        super().__init__(429, "overloaded", message)


def error_response(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"error": message, "error_type": error_type})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True  # FastAPI parses a body without a content type as JSON
    main = content_type.split(";")[0].strip().lower()
    return main == "application/json" or main.endswith("+json")


def _describe(errors: list[dict]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> Response:
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return error_response(exc.status, exc.error_type, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if request.method == "POST" and not _is_json(request.headers.get("content-type")):
            return error_response(
                415,
                "validation",
                "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')",
            )
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "validation", f"request body is not valid JSON: {_describe(errors)}")
        return error_response(422, "validation", _describe(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        kind = "auth" if exc.status_code == 401 else "validation"
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            detail = "request body is not valid UTF-8 JSON"
        else:
            detail = str(exc.detail)
        return error_response(exc.status_code, kind, detail, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return error_response(500, "backend", f"internal error: {type(exc).__name__}")
