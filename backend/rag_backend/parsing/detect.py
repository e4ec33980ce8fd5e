"""Format detection: magic bytes first, then the extension, then the content type; refusals say why."""

from __future__ import annotations

import codecs
import os
import re

from rag_backend.parsing.base import SUPPORTED_HINT, UnsupportedFormat
from rag_backend.parsing.text import BOMS

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
    if not head or any(head.startswith(bom) for bom, enc in BOMS if enc != "utf-8"):
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
