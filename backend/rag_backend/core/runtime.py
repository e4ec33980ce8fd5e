"""Runtime helpers the two services share word for word: JSON logs, printable text. Nothing here speaks HTTP
(the error body, the key check and the oversized-body answer are the edge's: `api/wire.py`, twinned the same way).

Each image ships only its own package, so each service keeps a copy of this file; deploy/tests/test_twins.py
fails when the copies differ. Edit one, copy it over the other.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

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


def printable(text: str) -> str:
    """A reason orjson can write: a lone surrogate echoed back from the input becomes its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
