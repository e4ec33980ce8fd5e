"""How a document's original upload and parsed text go back to a browser: never as something it would run.

An upload is whatever a user sent: an HTML page with scripts, an SVG or XML file (ingested as text) may all carry
script that would run with this origin's cookies and API access if served under their own type. Only types a
browser renders without running the document's own code are served as themselves: PDF inline (its viewer is
sandboxed by the browser; a CSP sandbox would make Chromium refuse to show it), DOCX as a download. Everything else
(HTML, SVG, XML, Markdown, text) goes out as `text/plain` under `Content-Security-Policy: sandbox`, so even a
browser that ignored `nosniff` would run nothing. A document's id is its version: the ETags derive from its SHA-256.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SANDBOX = "sandbox; default-src 'none'"
TEXT_UTF8 = "text/plain; charset=utf-8"
# Served as their own type (format -> media type, disposition); any other format is text/plain.
AS_ITSELF: dict[str, tuple[str, str]] = {"pdf": (PDF, "inline"), "docx": (DOCX, "attachment")}
_UNSAFE_IN_QUOTES = re.compile(r"[^A-Za-z0-9._ ()+-]")


def disposition(kind: str, filename: str) -> str:
    """`inline; filename="ascii"; filename*=UTF-8''...`: the ASCII fallback keeps nothing that could end the quoted
    string or the header, and RFC 6266's extended form carries the real name."""
    fallback = _UNSAFE_IN_QUOTES.sub("_", filename).strip(" .") or "document"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _text_type(data: bytes) -> str:
    """UTF-8 (the usual case) is declared; other encodings are left to the browser, which still shows plain text."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "text/plain"
    return TEXT_UTF8


def etag(doc: dict[str, Any], what: str) -> str:
    """The upload's SHA-256 names both representations; `what` tells the original from the parsed text."""
    return f'"{doc["sha256"]}-{what}"'


def _headers(doc: dict[str, Any], what: str, *, sandbox: bool) -> dict[str, str]:
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache", "ETag": etag(doc, what)}
    if sandbox:
        headers["Content-Security-Policy"] = SANDBOX
    return headers


def not_modified(doc: dict[str, Any], what: str, if_none_match: str | None) -> Response | None:
    """304 when the client already holds this version (spares reading up to MAX_UPLOAD_MB from the catalog)."""
    if if_none_match and etag(doc, what) in {t.strip().removeprefix("W/") for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=_headers(doc, what, sandbox=True))
    return None


def original(doc: dict[str, Any], data: bytes) -> Response:
    """The upload as sent, under a type no browser executes (see the module's docstring)."""
    media, kind = AS_ITSELF.get(doc["format"], (_text_type(data), "inline"))
    headers = _headers(doc, "original", sandbox=media != PDF)
    # Set here, not as media_type: Starlette would add "charset=utf-8" to a text/plain that is not UTF-8.
    headers.update({"Content-Type": media, "Content-Disposition": disposition(kind, doc["filename"])})
    return Response(content=data, headers=headers)


def parsed_text(doc: dict[str, Any], data: bytes) -> Response:
    """The parsed text (UTF-8) that results' char_start/char_end index."""
    return Response(content=data, media_type=TEXT_UTF8, headers=_headers(doc, "text", sandbox=True))
