"""The error answers of the OpenAPI document: every status an operation can answer with, each with ErrorBody.

Two sources, so the document follows the code instead of a list kept beside it:

- what a route lets through, declared on it as `responses=raises(NotFound, ...)`: the one table (api/errors.py)
  turns each class into its status and, for a 503, its Retry-After header;
- what the HTTP edge answers around every route, added by `install` wherever it applies: the guard's 401 (API key)
  and 403 (cross-site write), 400 and 413 for a request body, 415 for the JSON bodies, and 422 where a parameter
  or the body can fail validation, with our body instead of FastAPI's `detail` list (HTTPValidationError is gone).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from rag_backend.api.errors import JSON_BODY_PATHS, JSON_METHODS, Row, row_for
from rag_backend.api.middleware import LIMIT_SETTING, cross_origin_refusal, key_required
from rag_backend.api.schemas import ErrorBody

Responses = dict[int | str, dict[str, Any]]
Spec = dict[str, Any]

REF = "#/components/schemas/{model}"
ERROR_CONTENT = {"application/json": {"schema": {"$ref": REF.format(model=ErrorBody.__name__)}}}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}}
CHALLENGE = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
FOREIGN_PAGE = {b"origin": b"https://another-site.invalid", b"host": b"backend"}  # what the 403 guard refuses

UNAUTHORIZED = "API_KEY is set and the request carries no matching key (Authorization: Bearer or X-API-Key)"
CROSS_SITE = "A browser page of another site sent it (Origin, Sec-Fetch-Site) and CORS_ALLOW_ORIGINS does not list it"
UNPARSABLE = {
    "application/json": "The body is not valid JSON",
    "multipart/form-data": "The form cannot be parsed (malformed, over MAX_FILES_PER_UPLOAD files, too many fields)",
}
OVER_LIMIT = f"The body is over {LIMIT_SETTING}"
NOT_JSON = "Content-Type is not application/json"
INVALID = "The request breaks the schema; the reason names the field"
FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def raises(*causes: type[BaseException]) -> Responses:
    """A route's own error answers, from the exception classes it lets through; each needs a row in the table."""
    out: Responses = {}
    for cls in causes:
        row = row_for(cls)
        if row is None:
            raise TypeError(f"{cls.__name__} has no row in api/errors.py: it would answer 500")
        entry = out.setdefault(row.status, {"description": "", "content": copy.deepcopy(ERROR_CONTENT)})
        entry["description"] = _join(entry["description"], _why(cls, row))
        if row.retry_after is not None:
            entry["headers"] = copy.deepcopy(RETRY_AFTER)
    return out  # `content`, not `model`: FastAPI would file the body under the route's own media type (text/plain)


def _why(cls: type[BaseException], row: Row) -> str:
    """Our classes say what went wrong in their docstring's first paragraph; a library's is named by the row."""
    if cls.__module__.startswith("rag_backend") and cls.__doc__:
        return " ".join(cls.__doc__.strip().split("\n\n")[0].split())
    reason = row.reason or cls.__name__
    return reason[:1].upper() + reason[1:]


def _join(description: str, why: str) -> str:
    """One sentence per cause; the same cause twice is said once."""
    sentence = why if why.endswith(".") else why + "."
    return description if sentence in description else f"{description} {sentence}".strip()


def edge_errors(method: str, path: str, operation: Spec) -> Iterator[tuple[int, str]]:
    """What the guard middleware and the request handlers answer for this operation before its code runs.

    Read off the operation itself: a JSON body is a model FastAPI validates; a body described otherwise (the
    upload's form) is parsed by its route, which says what it refuses with `raises`."""
    if key_required(path):
        yield 401, UNAUTHORIZED
    if cross_origin_refusal(method.upper(), path, FOREIGN_PAGE, frozenset()) is not None:
        yield 403, CROSS_SITE
    media_types = operation.get("requestBody", {}).get("content", {})
    for media_type in media_types:
        yield 400, UNPARSABLE[media_type]
        yield 413, OVER_LIMIT
    if method.upper() in JSON_METHODS and path in JSON_BODY_PATHS and media_types:
        yield 415, NOT_JSON
    if "application/json" in media_types or any(_can_fail(p) for p in operation.get("parameters", [])):
        yield 422, INVALID


ANY_TEXT = ({"type": "string"}, {"type": "null"})


def _can_fail(param: Spec) -> bool:
    """Whether FastAPI can refuse this parameter: a required one that is missing (a path's never is), or a schema
    narrower than any text (a number, an enum, a bound)."""
    if param.get("required") and param.get("in") != "path":
        return True
    schema = param["schema"]
    plain = (
        {k: v for k, v in s.items() if k not in ("title", "description", "default")}
        for s in schema.get("anyOf", [schema])
    )
    return any(s not in ANY_TEXT for s in plain)


def with_edge_errors(spec: Spec) -> Spec:
    """Adds the edge's statuses to every operation, in place; FastAPI's validation schemas leave the document."""
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation["responses"]
            if FASTAPI_422 in str(responses.get("422")):
                del responses["422"]
            for status, why in edge_errors(method, path, operation):
                entry = responses.setdefault(str(status), {"description": "", "content": copy.deepcopy(ERROR_CONTENT)})
                entry["description"] = _join(entry["description"], why)
                if status == 401:
                    entry["headers"] = copy.deepcopy(CHALLENGE)
            if "401" in responses:  # the edge's 401 and a route's own (a refused sign-in) alike
                responses["401"]["headers"] = copy.deepcopy(CHALLENGE)
            operation["responses"] = dict(sorted(responses.items()))
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    body = ErrorBody.model_json_schema(ref_template=REF)
    for name, schema in {**body.pop("$defs", {}), ErrorBody.__name__: body}.items():
        schemas.setdefault(name, schema)
    spec["components"]["schemas"] = dict(sorted(schemas.items()))
    return spec


def install(app: FastAPI) -> None:
    """app.openapi(), which /openapi.json, /docs and the page's committed copy all show, with the edge's errors."""
    build = app.openapi

    def openapi() -> Spec:
        if app.openapi_schema is None:
            app.openapi_schema = with_edge_errors(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
