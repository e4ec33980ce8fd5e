"""PDF: one section per page with text (pypdf); scanned or encrypted files fail with a reason."""

from __future__ import annotations

import io
import logging

from rag_backend.parsing.base import ParsedDocument, ParseError, Section, collapse, reason
from rag_backend.parsing.text import normalise

log = logging.getLogger(__name__)


def parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:
        raise ParseError(f"corrupt PDF: {reason(exc)}") from exc
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:
            raise ParseError(f"encrypted PDF could not be opened: {reason(exc)}; upload an unprotected copy") from exc
        if not opened:
            raise ParseError("encrypted PDF: it needs a password to open; upload an unprotected copy")
    try:
        pages = list(reader.pages)
    except Exception as exc:
        raise ParseError(f"corrupt PDF: {reason(exc)}") from exc

    title: str | None = None
    try:
        meta = reader.metadata
        if meta is not None and meta.title:
            title = collapse(str(meta.title)) or None
    except Exception:  # metadata is optional; a broken info dict must not fail the document
        title = None

    sections: list[Section] = []
    failures: list[str] = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one bad page should not cost the rest of the document
            failures.append(f"page {number}: {reason(exc)}")
            continue
        text = normalise(text).strip()
        if text:
            sections.append(Section(text=text, page=number))
    if not sections:
        if failures:
            raise ParseError(f"corrupt PDF: text extraction failed ({'; '.join(failures[:3])})")
        raise ParseError(
            "no extractable text in the PDF: it may be a scanned document or contain only images (OCR is not supported)"
        )
    if failures:
        log.warning("PDF text extraction failed on %d page(s): %s", len(failures), "; ".join(failures[:5]))
    return ParsedDocument(format="pdf", title=title, sections=sections)
