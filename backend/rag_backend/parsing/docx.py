"""DOCX: paragraphs and tables in document order, sections under Word's heading styles (python-docx)."""

from __future__ import annotations

import io

from rag_backend.parsing.base import ParsedDocument, ParseError, SectionBuilder, collapse, reason
from rag_backend.parsing.text import normalise


def parse_docx(data: bytes) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise ParseError(f"corrupt or unsupported DOCX: {reason(exc)}") from exc

    title: str | None = None
    try:
        title = collapse(document.core_properties.title or "") or None
    except Exception:  # optional metadata
        title = None
    first_title: str | None = None
    first_h1: str | None = None

    builder = SectionBuilder("\n\n")
    style_names: dict[str | None, str] = {}
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = normalise(block.text).strip()
            if not text:
                continue
            style = _style_name(block, style_names)
            if style.startswith("heading") or style == "title":
                heading = collapse(text)
                if style == "title" and first_title is None:
                    first_title = heading
                elif style == "heading 1" and first_h1 is None:
                    first_h1 = heading
                builder.start(heading, text)
            else:
                builder.add(text)
        elif isinstance(block, Table):
            table_text = _docx_table_text(block)
            if table_text:
                builder.add(table_text)
    return ParsedDocument(format="docx", title=title or first_title or first_h1, sections=builder.finish())


def _style_name(paragraph: object, names: dict[str | None, str]) -> str:
    """Cached by style id: python-docx resolves a paragraph's style by scanning every style in the document
    (milliseconds each), which made a long document's parse take minutes."""
    try:
        style_id = paragraph._p.style  # type: ignore[attr-defined]
    except Exception:
        return _resolve_style_name(paragraph)
    if style_id not in names:
        names[style_id] = _resolve_style_name(paragraph)
    return names[style_id]


def _resolve_style_name(paragraph: object) -> str:
    try:
        style = paragraph.style  # type: ignore[attr-defined]
        return (style.name or "").strip().lower() if style is not None else ""
    except Exception:  # a dangling style reference is not worth failing over
        return ""


def _docx_table_text(table: object) -> str:
    """One line per row, cells joined by " | "; merged cells (the same cell repeated) appear once."""
    rows: list[str] = []
    for row in table.rows:  # type: ignore[attr-defined]
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            key = id(cell._tc)
            if key in seen:
                continue
            seen.add(key)
            cells.append(collapse(normalise(cell.text)))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
