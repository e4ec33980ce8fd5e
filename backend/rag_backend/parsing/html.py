"""HTML: visible text by block, sections under h1-h6; scripts, navigation and page chrome dropped."""

from __future__ import annotations

import codecs
import re

from rag_backend.parsing.base import ParsedDocument, ParseError, SectionBuilder, collapse, reason
from rag_backend.parsing.text import decode_text, normalise

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
        return normalise(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data[:4096])
    if declared:
        try:
            return normalise(data.decode(declared.group(1).decode("ascii"), errors="replace"))
        except LookupError:
            pass
    return decode_text(data)


class _HtmlText:
    def __init__(self) -> None:
        self.builder = SectionBuilder("\n\n")
        self._words: list[str] = []
        self._lines: list[str] = []

    def text(self, s: str) -> None:
        self._words.append(s)

    def line_break(self) -> None:
        if self._words:
            line = collapse("".join(self._words))
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


def parse_html(data: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, PreformattedString, Tag

    try:
        soup = BeautifulSoup(_decode_html(data), "lxml")
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError(f"could not parse HTML: {reason(exc)}") from exc

    title: str | None = None
    title_tag = soup.find("title")
    if title_tag is not None:
        title = collapse(title_tag.get_text()) or None

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
            heading = collapse(node.get_text())
            if heading:
                if name == "h1" and first_h1 is None:
                    first_h1 = heading
                out.heading(heading)
            continue
        if name == "pre":
            out.raw_paragraph(normalise(node.get_text()))
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
