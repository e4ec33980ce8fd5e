"""Runtime helpers the two services share word for word: JSON logs, the error body, the API-key check.

Each image ships only its own package, so each service keeps a copy of this file; deploy/tests/test_twins.py
fails when the copies differ. Edit one, copy it over the other.
"""

from __future__ import annotations

import hmac
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from starlette.responses import Response

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so a log shipper indexes them without parsing rules."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self.service,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(service: str, level: str = "INFO", json: bool = True, quiet: Iterable[str] = ()) -> None:
    """Root logger to stdout; uvicorn's loggers propagate to it; `quiet` loggers only warn."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service) if json else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    for name in ("uvicorn.access", *quiet):
        logging.getLogger(name).setLevel(logging.WARNING)


def error_response(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None, retry_after: float | None = None
) -> Response:
    """The one error body: {"error": reason, "error_type": kind}; 429/503 may say when to come back."""
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    body = orjson.dumps({"error": message, "error_type": error_type})
    return Response(body, status_code=status, media_type="application/json", headers=headers or None)


def printable(text: str) -> str:
    """A reason orjson can write: a lone surrogate echoed back from the input becomes its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
