"""Uploaded bytes -> text sections (PDF, DOCX, HTML, Markdown, plain text).

Every parser failure surfaces as `ParseError` (the ingestion job fails with its message) and every
format we refuse surfaces as `UnsupportedFormat` (the API answers 415), so callers never see raw
library exceptions.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

FORMATS = ("pdf", "docx", "html", "markdown", "text")

SUPPORTED_HINT = (
    "supported formats: PDF (.pdf), Word (.docx), HTML (.html, .htm), Markdown (.md, .markdown) "
    "and plain text (.txt, .csv, .json, .xml, .log, ...)"
)


class UnsupportedFormat(ValueError):
    """The upload is a kind of file we do not ingest; the message says what it looks like and what is supported."""


class ParseError(ValueError):
    """The upload claims a supported format but is corrupt, encrypted, undecodable or has no text."""


@dataclass(slots=True)
class Section:
    text: str
    page: int | None = None  # 1-based, PDF only
    heading: str | None = None  # nearest heading


@dataclass(slots=True)
class ParsedDocument:
    format: str
    title: str | None
    sections: list[Section] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------------
# format detection

_EXT_FORMATS: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdown": "markdown",
    ".mkd": "markdown",
    ".mdx": "markdown",
}

# Text-like files are ingested verbatim: their raw markup/structure is still meaningful text for embeddings.
_TEXT_EXTS = frozenset(
    (
        ".txt .text .rst .adoc .asciidoc .org .tex .csv .tsv .log .json .jsonl .ndjson .xml .yaml .yml .toml "
        ".ini .cfg .conf .env .properties .srt .vtt .sql .sh .bash .py .js .ts .tsx .jsx .java .kt .go .rs .c .h "
        ".cc .cpp .hpp .cs .rb .php .swift .scala .r .m .css .scss .lua .pl"
    ).split()
)

_CONVERT = "convert it to .docx or PDF"
_UNSUPPORTED_EXTS: dict[str, str] = {
    ".doc": f"legacy Word .doc files are not supported; {_CONVERT}",
    ".dot": f"legacy Word templates (.dot) are not supported; {_CONVERT}",
    ".docm": f"macro-enabled Word files (.docm) are not supported; {_CONVERT}",
    ".dotx": f"Word templates (.dotx) are not supported; {_CONVERT}",
    ".rtf": f"RTF files are not supported; {_CONVERT}",
    ".odt": f"OpenDocument text (.odt) is not supported; {_CONVERT}",
    ".pages": f"Apple Pages files are not supported; {_CONVERT}",
    ".xls": "spreadsheets (.xls) are not supported; export the sheet as .csv",
    ".xlsx": "spreadsheets (.xlsx) are not supported; export the sheet as .csv",
    ".xlsm": "spreadsheets (.xlsm) are not supported; export the sheet as .csv",
    ".ods": "spreadsheets (.ods) are not supported; export the sheet as .csv",
    ".ppt": "presentations (.ppt) are not supported; export them as PDF",
    ".pptx": "presentations (.pptx) are not supported; export them as PDF",
    ".odp": "presentations (.odp) are not supported; export them as PDF",
    ".epub": "EPUB books are not supported; convert them to PDF or HTML",
}
_IMAGE_EXTS = frozenset(".png .jpg .jpeg .gif .bmp .tif .tiff .webp .heic .heif .svg .ico".split())
_ARCHIVE_EXTS = frozenset(".zip .gz .tgz .tar .bz2 .xz .7z .rar .zst".split())

_CONTENT_TYPES: dict[str, str] = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/json": "text",
    "application/xml": "text",
    "application/x-ndjson": "text",
    "application/x-yaml": "text",
    "application/yaml": "text",
}
_UNSUPPORTED_CONTENT_TYPES: dict[str, str] = {
    "application/msword": _UNSUPPORTED_EXTS[".doc"],
    "application/rtf": _UNSUPPORTED_EXTS[".rtf"],
    "text/rtf": _UNSUPPORTED_EXTS[".rtf"],
    "application/vnd.ms-excel": _UNSUPPORTED_EXTS[".xls"],
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _UNSUPPORTED_EXTS[".xlsx"],
    "application/vnd.ms-powerpoint": _UNSUPPORTED_EXTS[".ppt"],
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": _UNSUPPORTED_EXTS[".pptx"],
    "application/vnd.oasis.opendocument.text": _UNSUPPORTED_EXTS[".odt"],
    "application/zip": "ZIP archives are not supported",
    "application/epub+zip": _UNSUPPORTED_EXTS[".epub"],
}

# (prefix, description) checked against the start of the upload.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", f"a legacy Microsoft Office file (.doc/.xls/.ppt); {_CONVERT}"),
    (b"{\\rtf", f"an RTF document; {_CONVERT}"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image (images are not supported, there is no OCR)"),
    (b"\xff\xd8\xff", "a JPEG image (images are not supported, there is no OCR)"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image (images are not supported, there is no OCR)"),
    (b"MM\x00*", "a TIFF image (images are not supported, there is no OCR)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"OggS", "an audio/video file"),
    (b"ID3", "an MP3 file"),
    (b"fLaC", "an audio file"),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it shares the first two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_HTML_SNIFF = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S)


def _unsupported(what: str) -> UnsupportedFormat:
    return UnsupportedFormat(f"unsupported file: {what}; {SUPPORTED_HINT}")


def _sniff_zip(head: bytes, ext: str) -> str:
    """OOXML/ODF packages are ZIPs; the member names near the start tell them apart."""
    if b"word/" in head:
        return "docx"
    if b"xl/" in head:
        raise _unsupported(_UNSUPPORTED_EXTS[".xlsx"].replace(" (.xlsx)", " (looks like an Excel .xlsx workbook)"))
    if b"ppt/" in head:
        raise _unsupported(_UNSUPPORTED_EXTS[".pptx"].replace(" (.pptx)", " (looks like a PowerPoint .pptx deck)"))
    if b"application/epub+zip" in head:
        raise _unsupported(_UNSUPPORTED_EXTS[".epub"])
    if b"opendocument" in head:
        raise _unsupported(f"this looks like an OpenDocument (LibreOffice) file; {_CONVERT}")
    if ext == ".docx":  # the head may be too short to reach the word/ members
        return "docx"
    raise _unsupported("this looks like a ZIP archive (archives are not supported; upload the files inside it)")


def _looks_binary(head: bytes) -> bool:
    """NUL bytes or many control characters mean binary (UTF-16/32 with a BOM excepted)."""
    if not head or any(head.startswith(bom) for bom, enc in _BOMS if enc != "utf-8"):
        return False
    head = head[:8192]  # callers may pass the whole upload
    controls = sum(1 for b in head if b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B))
    if controls > max(2, len(head) // 20):
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        if b"\x00" in head:  # NULs in something that is not even UTF-8: binary
            return True
    else:
        return False  # valid UTF-8 with a stray NUL or two (they are stripped when decoding)
    from charset_normalizer import from_bytes

    return from_bytes(head).best() is None


def detect_format(filename: str | None, head: bytes, content_type: str | None = None) -> str:
    """Pick a parser from magic bytes, then extension, then content type.

    `head` should be at least the first 8 KiB of the upload (the whole file is fine): DOCX is recognised by
    its `word/` ZIP members. Raises `UnsupportedFormat` for anything we cannot ingest. Empty uploads get a
    format (from the name, default "text") so that `parse_document` rejects them with a `ParseError`.
    """
    ext = os.path.splitext((filename or "").strip().lower())[1]
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if not head:
        return _EXT_FORMATS.get(ext) or _CONTENT_TYPES.get(ctype) or "text"

    # 1. magic bytes
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(_ZIP_MAGIC):
        return _sniff_zip(head, ext)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise _unsupported(f"this looks like {what}")
    if head[4:8] == b"ftyp":
        raise _unsupported("this looks like a video or HEIC image")
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        raise _unsupported("this looks like an image, audio or video file")

    # 2. extension, 3. content type
    fmt: str | None = None
    if ext in _UNSUPPORTED_EXTS:
        raise _unsupported(_UNSUPPORTED_EXTS[ext])
    if ext in _IMAGE_EXTS:
        raise _unsupported(f"{ext} images are not supported (there is no OCR)")
    if ext in _ARCHIVE_EXTS:
        raise _unsupported(f"{ext} archives are not supported; upload the files inside it")
    if ext in _EXT_FORMATS:
        fmt = _EXT_FORMATS[ext]
    elif ext in _TEXT_EXTS:
        fmt = "text"
    elif ctype in _UNSUPPORTED_CONTENT_TYPES:
        raise _unsupported(_UNSUPPORTED_CONTENT_TYPES[ctype])
    elif ctype in _CONTENT_TYPES:
        fmt = _CONTENT_TYPES[ctype]
    elif ctype.startswith("text/"):
        fmt = "text"

    if fmt == "pdf":
        raise _unsupported("the file is named or typed as PDF but has no %PDF header, so it is not a valid PDF")
    if fmt == "docx":
        raise _unsupported("the file is named or typed as DOCX but is not a ZIP package, so it is not a valid DOCX")

    # text-like from here on: refuse binary content whatever the name says
    if _looks_binary(head):
        named = f" (despite its {ext} extension)" if ext else ""
        raise _unsupported(f"this looks like a binary file{named}")
    if fmt is None:
        fmt = "html" if _HTML_SNIFF.match(head[:4096]) else "text"
    return fmt


# --------------------------------------------------------------------------------------------------------------------
# text decoding

_PREFERRED_SINGLE_BYTE = ("cp1252", "latin_1", "iso8859_15")


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def decode_text(data: bytes) -> str:
    """UTF-8 (BOMs honoured) first, else charset-normalizer; newlines normalised to \\n and NULs removed."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return _normalise(data[len(bom) :].decode(enc))
            except UnicodeDecodeError as exc:
                raise ParseError(f"text is not valid {enc} despite its byte-order mark") from exc
    try:
        return _normalise(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return _normalise(_decode_guess(data))


def _decode_guess(data: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    if b"\x00" not in data:  # UTF-16/32 without a BOM is rare, and without NULs it is a misdetection
        matches = [m for m in matches if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        if _mostly_ascii(data):
            try:
                return data.decode("cp1252")
            except UnicodeDecodeError:
                pass
        raise ParseError("could not decode the text: unknown character encoding")
    best = matches[0]
    # Ties between Latin code pages are common on short texts: Western European (cp1252) is the likeliest.
    for enc in _PREFERRED_SINGLE_BYTE:
        for m in matches:
            if m.encoding == enc and m.chaos <= best.chaos + 0.01 and m.coherence >= best.coherence - 0.01:
                return str(m)
    if best.coherence == 0.0 and _mostly_ascii(data):
        # No language evidence (short text) and only sparse accented bytes: Latin text in cp1252 is the likeliest;
        # Cyrillic/Greek/etc. single-byte text is mostly high bytes and keeps the detector's answer.
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            pass
    return str(best)


def _mostly_ascii(data: bytes) -> bool:
    letters = [b for b in data if b > 0x40]
    return sum(1 for b in letters if b >= 0x80) < 0.3 * max(1, len(letters))


# --------------------------------------------------------------------------------------------------------------------
# section building shared by the structured formats


class _SectionBuilder:
    """Collects parts under the current heading; a heading with no body is carried into the next section."""

    def __init__(self, sep: str) -> None:
        self.sections: list[Section] = []
        self._sep = sep
        self._heading: str | None = None
        self._parts: list[str] = []
        self._has_body = False
        self._carry: list[str] = []

    def add(self, text: str) -> None:
        self._parts.append(text)
        if text.strip():
            self._has_body = True

    def start(self, heading: str, heading_text: str) -> None:
        self._close()
        self._heading = heading
        self._parts = [heading_text]
        self._has_body = False

    def _close(self) -> None:
        if not self._has_body and self._heading is not None:
            self._carry.extend(self._parts)  # heading-only: merge into the next section
        elif self._has_body:
            text = self._sep.join([*self._carry, *self._parts]).strip()
            if text:
                self.sections.append(Section(text=text, heading=self._heading))
            self._carry = []
        self._parts = []
        self._has_body = False

    def finish(self) -> list[Section]:
        self._close()
        rest = self._sep.join(self._carry).strip()
        if rest:
            self.sections.append(Section(text=rest, heading=self._heading))
        self._carry = []
        return self.sections


def _collapse(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------------------------------
# PDF


def _parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
    except Exception as exc:
        raise ParseError(f"corrupt PDF: {_reason(exc)}") from exc
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception as exc:
            raise ParseError(f"encrypted PDF could not be opened: {_reason(exc)}; upload an unprotected copy") from exc
        if not opened:
            raise ParseError("encrypted PDF: it needs a password to open; upload an unprotected copy")
    try:
        pages = list(reader.pages)
    except Exception as exc:
        raise ParseError(f"corrupt PDF: {_reason(exc)}") from exc

    title: str | None = None
    try:
        meta = reader.metadata
        if meta is not None and meta.title:
            title = _collapse(str(meta.title)) or None
    except Exception:  # metadata is optional; a broken info dict must not fail the document
        title = None

    sections: list[Section] = []
    failures: list[str] = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # one bad page should not cost the rest of the document
            failures.append(f"page {number}: {_reason(exc)}")
            continue
        text = _normalise(text).strip()
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


# --------------------------------------------------------------------------------------------------------------------
# DOCX


def _parse_docx(data: bytes) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise ParseError(f"corrupt or unsupported DOCX: {_reason(exc)}") from exc

    title: str | None = None
    try:
        title = _collapse(document.core_properties.title or "") or None
    except Exception:  # optional metadata
        title = None
    first_title: str | None = None
    first_h1: str | None = None

    builder = _SectionBuilder("\n\n")
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = _normalise(block.text).strip()
            if not text:
                continue
            style = _style_name(block)
            if style.startswith("heading") or style == "title":
                heading = _collapse(text)
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


def _style_name(paragraph: object) -> str:
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
            cells.append(_collapse(_normalise(cell.text)))
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------------------------------
# HTML

_HTML_DROP = frozenset(
    "script style noscript nav template head title svg iframe object embed canvas select button".split()
)
_HTML_PAGE_CHROME = frozenset(("header", "footer"))
_HTML_HEADINGS = frozenset(("h1", "h2", "h3", "h4", "h5", "h6"))
_HTML_PARA_BLOCKS = frozenset(
    (
        "address article aside blockquote body center details dialog dir div dl fieldset figure form hgroup hr html "
        "main menu ol p section table ul header footer legend"
    ).split()
)
_HTML_LINE_BLOCKS = frozenset("li tr dt dd caption figcaption summary option thead tbody tfoot".split())
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _decode_html(data: bytes) -> str:
    """UTF-8 first; a legacy page's <meta charset> beats guessing."""
    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return decode_text(data)
    try:
        return _normalise(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data[:4096])
    if declared:
        try:
            return _normalise(data.decode(declared.group(1).decode("ascii"), errors="replace"))
        except LookupError:
            pass
    return decode_text(data)


class _HtmlText:
    def __init__(self) -> None:
        self.builder = _SectionBuilder("\n\n")
        self._words: list[str] = []
        self._lines: list[str] = []

    def text(self, s: str) -> None:
        self._words.append(s)

    def line_break(self) -> None:
        if self._words:
            line = _collapse("".join(self._words))
            self._words = []
            if line:
                self._lines.append(line)

    def para_break(self) -> None:
        self.line_break()
        if self._lines:
            self.builder.add("\n".join(self._lines))
            self._lines = []

    def raw_paragraph(self, text: str) -> None:
        self.para_break()
        text = text.strip("\n").rstrip()
        if text.strip():
            self.builder.add(text)

    def heading(self, text: str) -> None:
        self.para_break()
        self.builder.start(text, text)


def _parse_html(data: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, PreformattedString, Tag

    try:
        soup = BeautifulSoup(_decode_html(data), "lxml")
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"could not parse HTML: {_reason(exc)}") from exc

    title: str | None = None
    title_tag = soup.find("title")
    if title_tag is not None:
        title = _collapse(title_tag.get_text()) or None

    out = _HtmlText()
    first_h1: str | None = None
    cell_counts: dict[int, int] = {}
    # Iterative walk (deeply nested markup must not hit the recursion limit). Entries: (node, in_article, closing).
    stack: list[tuple[object, bool, bool]] = [(soup, False, False)]
    while stack:
        node, in_article, closing = stack.pop()
        if closing:
            if node.name in _HTML_LINE_BLOCKS:  # type: ignore[attr-defined]
                out.line_break()
            else:
                out.para_break()
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString) or isinstance(node, CData):
                out.text(str(node))
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name
        if name in _HTML_DROP or node.has_attr("hidden"):
            continue
        if name in _HTML_PAGE_CHROME and not in_article:  # site banners/footers; an article's own header stays
            continue
        if name in _HTML_HEADINGS:
            heading = _collapse(node.get_text())
            if heading:
                if name == "h1" and first_h1 is None:
                    first_h1 = heading
                out.heading(heading)
            continue
        if name == "pre":
            out.raw_paragraph(_normalise(node.get_text()))
            continue
        if name == "br":
            out.line_break()
            continue
        if name in ("td", "th"):
            parent_key = id(node.parent)
            cell_counts[parent_key] = cell_counts.get(parent_key, 0) + 1
            if cell_counts[parent_key] > 1:
                out.text(" | ")
        if name in _HTML_PARA_BLOCKS:
            out.para_break()
        elif name in _HTML_LINE_BLOCKS:
            out.line_break()
        child_in_article = in_article or name in ("article", "main")
        if name in _HTML_PARA_BLOCKS or name in _HTML_LINE_BLOCKS:
            stack.append((node, in_article, True))
        stack.extend((child, child_in_article, False) for child in reversed(node.contents))
    out.para_break()
    return ParsedDocument(format="html", title=title or first_h1, sections=out.builder.finish())


# --------------------------------------------------------------------------------------------------------------------
# Markdown and plain text

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_FRONT_TITLE = re.compile(r"""^title\s*[:=]\s*["']?(.*?)["']?\s*$""", re.I | re.M)


def _strip_front_matter(text: str) -> tuple[str, str | None]:
    """Drop a leading YAML (---) or TOML (+++) block; its `title:` is a better title than any heading."""
    first_nl = text.find("\n")
    first = (text if first_nl < 0 else text[:first_nl]).rstrip()
    if first not in ("---", "+++") or first_nl < 0:
        return text, None
    closers = ("---", "...") if first == "---" else ("+++",)
    pos = first_nl + 1
    while pos <= len(text):
        nl = text.find("\n", pos)
        line = (text[pos:] if nl < 0 else text[pos:nl]).rstrip()
        if line in closers:
            block = text[first_nl + 1 : pos]
            m = _FRONT_TITLE.search(block)
            rest = "" if nl < 0 else text[nl + 1 :]
            return rest, (m.group(1).strip() or None) if m else None
        if nl < 0:
            break
        pos = nl + 1
    return text, None  # unterminated: not front matter


def _parse_markdown(data: bytes) -> ParsedDocument:
    text, title = _strip_front_matter(decode_text(data))
    first_h1: str | None = None
    builder = _SectionBuilder("\n")
    fence: str | None = None  # the opening fence run while inside a fenced code block
    for line in text.split("\n"):
        if fence is not None:
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence) and line[:4].strip():
                fence = None
            builder.add(line)
            continue
        opened = _FENCE_OPEN.match(line)
        if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
            fence = opened.group(1)
            builder.add(line)
            continue
        atx = _ATX.match(line)
        if atx and atx.group(2) and atx.group(2).strip():
            heading = atx.group(2).strip()
            if len(atx.group(1)) == 1 and first_h1 is None:
                first_h1 = heading
            builder.start(heading, line)
        else:
            builder.add(line)
    return ParsedDocument(format="markdown", title=title or first_h1, sections=builder.finish())


def _parse_text(data: bytes) -> ParsedDocument:
    text = decode_text(data).strip()
    return ParsedDocument(format="text", title=None, sections=[Section(text=text)] if text else [])


# --------------------------------------------------------------------------------------------------------------------
# entry point

_PARSERS: dict[str, Callable[[bytes], ParsedDocument]] = {
    "pdf": _parse_pdf,
    "docx": _parse_docx,
    "html": _parse_html,
    "markdown": _parse_markdown,
    "text": _parse_text,
}


def _reason(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 200 else msg[:197] + "..."


def parse_document(data: bytes, fmt: str) -> ParsedDocument:
    """Parse `data` as `fmt` (one of FORMATS). Raises ParseError for anything unreadable or text-free."""
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise UnsupportedFormat(f"unknown format {fmt!r}; {SUPPORTED_HINT}")
    if not data or not data.strip():
        raise ParseError("no extractable text: the file is empty")
    try:
        doc = parser(data)
    except (ParseError, UnsupportedFormat):
        raise
    except Exception as exc:  # any library failure becomes a job failure with a short reason
        raise ParseError(f"could not parse the {fmt} file: {_reason(exc)}") from exc
    doc.sections = [s for s in doc.sections if s.text.strip()]
    if not doc.sections:
        raise ParseError("no extractable text in the document (whitespace or markup only)")
    return doc
