"""Parsing of real files built in the test (fpdf2, python-docx), plus the refusal paths users will hit."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from rag_backend.parsing import (
    FORMATS,
    ParseError,
    UnsupportedFormat,
    decode_text,
    detect_format,
    parse_document,
)


def _pdf(pages: list[str], *, title: str | None = None, encrypt_user_pw: str | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if encrypt_user_pw is not None:
        pdf.set_encryption(owner_password="owner", user_password=encrypt_user_pw)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def _parse(data: bytes, filename: str, content_type: str | None = None):
    return parse_document(data, detect_format(filename, data[:8192], content_type))


# -- PDF -------------------------------------------------------------------------------------------------------------


def test_pdf_two_pages_with_page_numbers_and_title() -> None:
    data = _pdf(["First page about the café.", "Second page: naïve résumé."], title="My Report")
    assert detect_format("report.pdf", data[:8192]) == "pdf"
    doc = _parse(data, "report.pdf")
    assert doc.format == "pdf" and doc.title == "My Report"
    assert [s.page for s in doc.sections] == [1, 2]
    assert "café" in doc.sections[0].text
    assert "naïve résumé" in doc.sections[1].text


def test_pdf_magic_wins_over_extension() -> None:
    data = _pdf(["hello world"])
    assert detect_format("notes.txt", data, "text/plain") == "pdf"


def test_truncated_pdf_is_parse_error() -> None:
    data = _pdf(["Some text that will be cut off."])
    with pytest.raises(ParseError, match="PDF"):
        parse_document(data[:200], "pdf")


def test_pdf_without_text_mentions_ocr() -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    with pytest.raises(ParseError, match="no extractable text") as info:
        parse_document(bytes(pdf.output()), "pdf")
    assert "OCR" in str(info.value)


def test_encrypted_pdf() -> None:
    locked = _pdf(["secret text"], encrypt_user_pw="s3cret")
    with pytest.raises(ParseError, match="encrypted PDF"):
        parse_document(locked, "pdf")
    # an owner-password-only PDF opens with the empty user password
    opened = parse_document(_pdf(["open text"], encrypt_user_pw=""), "pdf")
    assert "open text" in opened.sections[0].text


# -- DOCX ------------------------------------------------------------------------------------------------------------


def _docx() -> bytes:
    import docx

    d = docx.Document()
    d.add_heading("Quarterly Report", level=0)  # "Title" style
    d.add_paragraph("Intro paragraph before any section.")
    d.add_heading("Results", level=1)
    d.add_paragraph("Revenue grew in every region.")
    table = d.add_table(rows=2, cols=3)
    for r, row in enumerate([("Region", "Q1", "Q2"), ("North", "10", "12")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("Closing remark of the results.")
    d.add_heading("Empty heading section", level=2)
    d.add_heading("Outlook", level=2)
    d.add_paragraph("Next year looks bright.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_docx_headings_paragraphs_and_table() -> None:
    data = _docx()
    assert detect_format("report.docx", data[:8192]) == "docx"
    assert detect_format("upload.bin", data[:8192]) == "docx"  # recognised by content, not by name
    doc = _parse(data, "report.docx")
    assert doc.title == "Quarterly Report"
    by_heading = {s.heading: s.text for s in doc.sections}
    assert "Intro paragraph" in by_heading["Quarterly Report"]
    results = by_heading["Results"]
    assert results.startswith("Results")
    assert "Region | Q1 | Q2\nNorth | 10 | 12" in results
    assert results.index("Revenue") < results.index("Region") < results.index("Closing remark")
    # a heading with no body is folded into the next section rather than becoming a chunk of its own
    assert "Empty heading section" in by_heading["Outlook"] and "Next year" in by_heading["Outlook"]
    assert "Empty heading section" not in by_heading


def test_corrupt_docx_is_parse_error() -> None:
    data = _docx()
    with pytest.raises(ParseError):
        parse_document(data[: len(data) // 2], "docx")


# -- HTML ------------------------------------------------------------------------------------------------------------

_HTML = b"""<!DOCTYPE html>
<html><head><title>  Page   Title </title><style>body { color: red }</style>
<script>var tracking = "junk";</script></head>
<body>
<header><div>Site banner</div></header>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<p>Lead   paragraph with <b>bold</b>
 text&nbsp;and spacing.</p>
<p>Second paragraph.</p>
<h2>Details</h2>
<p>Detail text.<br>Next line.</p>
<ul><li>one</li><li>two</li></ul>
<table><tr><th>Name</th><th>Value</th></tr><tr><td>a</td><td>1</td></tr></table>
<noscript>Enable JS</noscript>
<template><p>template junk</p></template>
<!-- a comment -->
<article><header><h1>Article heading</h1></header><p>Article body.</p></article>
<footer>Copyright junk</footer>
<script>alert("more junk")</script>
</body></html>"""


def test_html_junk_removed_and_split_at_headings() -> None:
    assert detect_format("page.html", _HTML) == "html"
    assert detect_format("download", _HTML, "text/html; charset=utf-8") == "html"
    assert detect_format("no-extension", _HTML) == "html"  # sniffed
    doc = _parse(_HTML, "page.html")
    assert doc.title == "Page Title"
    full = "\n\n".join(s.text for s in doc.sections)
    for junk in ("tracking", "color: red", "Site banner", "Home", "Enable JS", "template junk", "comment", "Copyright"):
        assert junk not in full, junk
    first = doc.sections[0]
    assert first.heading is None
    assert first.text == "Lead paragraph with bold text and spacing.\n\nSecond paragraph."
    details = next(s for s in doc.sections if s.heading == "Details")
    assert "Detail text.\nNext line." in details.text
    assert "one\ntwo" in details.text
    assert "Name | Value\na | 1" in details.text
    article = next(s for s in doc.sections if s.heading == "Article heading")
    assert "Article body." in article.text


def test_html_legacy_charset_from_meta() -> None:
    page = '<html><head><meta charset="windows-1252"></head><body><p>Crème brûlée “quoted”</p></body></html>'
    doc = parse_document(page.encode("cp1252"), "html")
    assert doc.sections[0].text == "Crème brûlée “quoted”"
    assert doc.title is None


def test_html_with_only_markup_has_no_text() -> None:
    with pytest.raises(ParseError, match="no extractable text"):
        parse_document(b"<html><body><script>x()</script><div> </div></body></html>", "html")


# -- Markdown --------------------------------------------------------------------------------------------------------

_MD = """---
layout: post
tags: [a, b]
---
Preamble text.

# Main Title

Intro under the title.

## Setup ##

```bash
# this is a shell comment, not a heading
pip install thing
```

More setup.

### Usage
Use it like #this, not as a heading.
"""


def test_markdown_front_matter_headings_and_fences() -> None:
    assert detect_format("README.md", _MD.encode()) == "markdown"
    doc = _parse(_MD.encode(), "README.md")
    assert doc.title == "Main Title"
    assert [s.heading for s in doc.sections] == [None, "Main Title", "Setup", "Usage"]
    assert doc.sections[0].text == "Preamble text."
    assert "layout" not in "".join(s.text for s in doc.sections)
    setup = doc.sections[2].text
    assert setup.startswith("## Setup ##")
    assert "# this is a shell comment, not a heading" in setup and "More setup." in setup
    assert doc.sections[3].text == "### Usage\nUse it like #this, not as a heading."


def test_markdown_front_matter_title_wins() -> None:
    doc = parse_document(b'---\ntitle: "From Front Matter"\n---\n# Heading\ntext\n', "markdown")
    assert doc.title == "From Front Matter"
    assert doc.sections[0].heading == "Heading"


# -- plain text and decoding -----------------------------------------------------------------------------------------


def test_latin1_text_decoded() -> None:
    text = "Le café crème était très bon, à la française. Voilà où nous étions, naïvement."
    doc = _parse(text.encode("latin-1"), "notes.txt")
    assert doc.format == "text" and doc.title is None
    assert doc.sections[0].text == text


@pytest.mark.parametrize(
    ("text", "encoding"),
    [("Le café", "cp1252"), ("Привет мир, это тест кодировки", "cp1251"), ("Grüße aus Köln", "latin-1")],
)
def test_short_legacy_texts_decoded(text: str, encoding: str) -> None:
    assert decode_text(text.encode(encoding)) == text


def test_utf8_bom_and_newlines() -> None:
    data = "\ufeffline one\r\nline two\rline three\x00".encode()
    assert decode_text(data) == "line one\nline two\nline three"
    doc = _parse(data, "a.txt")
    assert doc.sections[0].text == "line one\nline two\nline three"


def test_utf16_with_bom_is_text() -> None:
    data = "\ufeffhello wörld".encode("utf-16-le")
    assert detect_format("a.txt", data) == "text"
    assert parse_document(data, "text").sections[0].text == "hello wörld"


@pytest.mark.parametrize("name", ["data.csv", "log.log", "x.json", "doc.rst", "feed.xml", "unknown.xyz", "noext"])
def test_text_like_names(name: str) -> None:
    assert detect_format(name, b"a,b\n1,2\n") == "text"


def test_empty_or_blank_upload_is_parse_error() -> None:
    """Empty content is a ParseError (job fails with a reason), whatever the name; detection does not refuse it."""
    for name in ("a.txt", "a.pdf", "a.md", "noext"):
        fmt = detect_format(name, b"")
        assert fmt in FORMATS
        with pytest.raises(ParseError, match="no extractable text"):
            parse_document(b"", fmt)
    with pytest.raises(ParseError, match="no extractable text"):
        parse_document(b" \n\t \r\n", "text")


# -- refusals --------------------------------------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("book.xlsx", _zip({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<x/>"}), "Excel"),
        ("sheet.docx", _zip({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"<x/>"}), "Excel"),
        ("deck.pptx", _zip({"ppt/presentation.xml": b"<x/>"}), "PowerPoint"),
        ("bundle.zip", _zip({"a.txt": b"hello"}), "ZIP archive"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "convert it to .docx or PDF"),
        ("old.doc", b"plain text but named .doc", "convert it to .docx or PDF"),
        ("scan.png", b"\x89PNG\r\n\x1a\n" + os.urandom(64), "PNG"),
        ("photo.txt", b"\x89PNG\r\n\x1a\n" + os.urandom(64), "PNG"),
        ("blob.bin", bytes(range(256)) * 4, "binary"),
        ("random.txt", b"\x00\x01\x02\x03" + os.urandom(512), "binary"),
        ("fake.pdf", b"this is not a pdf at all", "not a valid PDF"),
        ("fake.docx", b"this is not a docx", "not a valid DOCX"),
        ("x", b"hello", "Word"),  # via content type below
    ],
)
def test_unsupported_formats(name: str, data: bytes, needle: str) -> None:
    content_type = "application/msword" if name == "x" else None
    with pytest.raises(UnsupportedFormat) as info:
        detect_format(name, data[:8192], content_type)
    message = str(info.value)
    assert needle in message
    assert "supported formats: PDF" in message  # every refusal tells the user what would work


def test_parse_document_unknown_format() -> None:
    with pytest.raises(UnsupportedFormat):
        parse_document(b"x", "xlsx")


def test_garbage_under_every_parser_is_parse_error() -> None:
    """No library exception type may escape a parser."""
    garbage = os.urandom(2048)
    for fmt in ("pdf", "docx"):
        with pytest.raises(ParseError):
            parse_document(b"%PDF-1.7\n" + garbage if fmt == "pdf" else b"PK\x03\x04" + garbage, fmt)
