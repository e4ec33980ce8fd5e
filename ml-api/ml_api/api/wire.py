"""The HTTP edge the two services share word for word: the error body, the API-key check, the oversized-body answer,
FastAPI's validation errors as one reason.

Each image ships only its own package, so each service keeps a copy of this file in its `api/`;
deploy/tests/test_twins.py fails when the copies differ. Edit one, copy it over the other.
"""

from __future__ import annotations

import hmac

import orjson
from starlette.responses import Response

from ..core.runtime import printable


def error_response(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None, retry_after: float | None = None
) -> Response:
    """The one error body: {"error": reason, "error_type": kind}; 429/503 may say when to come back."""
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    body = orjson.dumps({"error": message, "error_type": error_type})
    return Response(body, status_code=status, media_type="application/json", headers=headers or None)


def describe_validation(errors: list[dict]) -> str:
    """FastAPI's validation errors as one readable reason: `field.path: message`, the first five."""
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")  # our validators' own reasons
        parts.append(f"{loc}: {message}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return printable("; ".join(parts) + more)


def too_large_reason(setting: str, limit_bytes: int) -> str:
    return f"request body exceeds the {setting} limit ({limit_bytes} bytes)"


def body_too_large(setting: str, limit_bytes: int) -> Response:
    return error_response(413, "validation", too_large_reason(setting, limit_bytes))


def presented_key(headers: dict[bytes, bytes]) -> bytes:
    """The key a client sent: `Authorization: Bearer <key>` (OpenAI, TEI clients) or `X-API-Key: <key>`."""
    auth = headers.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        return auth[7:].strip()
    return headers.get(b"x-api-key", b"").strip()


def key_matches(headers: dict[bytes, bytes], api_key: str | None) -> bool:
    """True when no key is configured or the presented one matches (constant-time)."""
    if not api_key:
        return True
    given = presented_key(headers)
    return bool(given) and hmac.compare_digest(given, api_key.encode())


UNAUTHORIZED = "missing or wrong API key: send Authorization: Bearer <key> or X-API-Key: <key>"
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def unauthorized() -> Response:
    return error_response(401, "auth", UNAUTHORIZED, headers=CHALLENGE)
