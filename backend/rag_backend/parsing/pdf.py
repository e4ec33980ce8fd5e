"""PDF: one section per page with text (pypdf); scanned or encrypted files fail with a reason."""

from __future__ import annotations

import contextlib
import io
import logging

from rag_backend.parsing.base import ParsedDocument, ParseError, Section, collapse, reason
from rag_backend.parsing.limits import ParseLimits, over
from rag_backend.parsing.text import normalise

log = logging.getLogger(__name__)


def parse_pdf(data: bytes, limits: ParseLimits | None = None) -> ParsedDocument:
    with _stream_caps(limits):
        return _parse_pdf(data, limits)


def _parse_pdf(data: bytes, limits: ParseLimits | None) -> ParsedDocument:
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
    if limits is not None:
        _check_declared_pages(reader, limits)
    try:
        pages = list(reader.pages)
    except Exception as exc:
        raise ParseError(f"corrupt PDF: {reason(exc)}") from exc
    if limits is not None and len(pages) > limits.max_pages:
        raise over(f"the PDF has {len(pages):,} pages", "PARSE_MAX_PAGES", limits.max_pages)

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
            if limits is not None and type(exc).__name__ == "LimitReachedError":  # pypdf's cap on a stream's size
                what = f"page {number} decompresses past pypdf's caps ({reason(exc)})"
                raise over(what, "PARSE_MAX_EXPANDED_MB", limits.max_expanded_mb) from exc
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


def _check_declared_pages(reader: object, limits: ParseLimits) -> None:
    """The page tree's /Count, read before pypdf walks (and holds) every page; the walk then checks the truth."""
    try:
        declared = int(reader.trailer["/Root"]["/Pages"]["/Count"])  # type: ignore[attr-defined]
    except Exception:  # a broken or absent count: the walk below counts for real
        return
    if declared > limits.max_pages:
        raise over(f"the PDF has {declared:,} pages", "PARSE_MAX_PAGES", limits.max_pages)


def _stream_caps(limits: ParseLimits | None) -> contextlib.AbstractContextManager[object]:
    """Each decompressed stream may grow to PARSE_MAX_EXPANDED_MB at most (never past pypdf's own caps).

    pypdf (7+) keeps these caps in a context variable, set for this parse only; older pypdf keeps its fixed 75 MB.
    """
    import pypdf

    get = getattr(pypdf, "get_configuration", None)
    apply = getattr(pypdf, "apply_configuration", None)
    if limits is None or get is None or apply is None:
        return contextlib.nullcontext()
    current = get()
    fields = (
        "zlib_maximum_output_length",
        "lzw_maximum_output_length",
        "run_length_maximum_output_length",
        "array_based_stream_maximum_output_length",
    )
    caps = {f: min(getattr(current, f), limits.max_expanded_bytes) for f in fields if hasattr(current, f)}
    return apply(**caps)  # type: ignore[no-any-return]
