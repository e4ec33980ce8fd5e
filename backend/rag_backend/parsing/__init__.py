"""Uploaded bytes -> text sections (PDF, DOCX, HTML, Markdown, plain text), one module per format.

`detect` picks the format from the bytes, name and content type; each format's module turns bytes into a
`ParsedDocument`; `parse_document` dispatches and turns any library failure into a `ParseError`, so callers
never see raw library exceptions. Ingestion calls `parse_isolated`, which runs `parse_document` in a child
process under `ParseLimits` (memory, time, pages, expanded size, elements), so no upload can exhaust the backend.
"""

from __future__ import annotations

from collections.abc import Callable

from rag_backend.parsing.base import (
    FORMATS,
    SUPPORTED_HINT,
    ParsedDocument,
    ParseError,
    Section,
    UnsupportedFormat,
    reason,
)
from rag_backend.parsing.detect import detect_format
from rag_backend.parsing.docx import parse_docx
from rag_backend.parsing.html import parse_html
from rag_backend.parsing.isolated import parse_isolated
from rag_backend.parsing.limits import ParseLimits, precheck
from rag_backend.parsing.markdown import parse_markdown
from rag_backend.parsing.pdf import parse_pdf
from rag_backend.parsing.text import decode_text, parse_text

__all__ = [
    "FORMATS",
    "SUPPORTED_HINT",
    "ParseError",
    "ParseLimits",
    "ParsedDocument",
    "Section",
    "UnsupportedFormat",
    "decode_text",
    "detect_format",
    "parse_document",
    "parse_isolated",
]

_PARSERS: dict[str, Callable[[bytes], ParsedDocument]] = {
    "pdf": parse_pdf,
    "docx": parse_docx,
    "html": parse_html,
    "markdown": parse_markdown,
    "text": parse_text,
}


def parse_document(data: bytes, fmt: str, limits: ParseLimits | None = None) -> ParsedDocument:
    """Parse `data` as `fmt` (one of FORMATS). Raises ParseError for anything unreadable or text-free.

    With `limits`, files whose counted size breaks one are refused before parsing and PDFs are capped in pages
    and stream sizes; memory and time are bounded only by `parse_isolated`'s child process.
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise UnsupportedFormat(f"unknown format {fmt!r}; {SUPPORTED_HINT}")
    if not data or not data.strip():
        raise ParseError("no extractable text: the file is empty")
    try:
        if limits is not None:
            precheck(data, fmt, limits)
        doc = parse_pdf(data, limits) if fmt == "pdf" else parser(data)
    except (ParseError, UnsupportedFormat):
        raise
    except Exception as exc:  # any library failure becomes a job failure with a short reason
        raise ParseError(f"could not parse the {fmt} file: {reason(exc)}") from exc
    doc.sections = [s for s in doc.sections if s.text.strip()]
    if not doc.sections:
        raise ParseError("no extractable text in the document (whitespace or markup only)")
    return doc
