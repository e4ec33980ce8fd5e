"""Markdown: sections under ATX headings (fenced code kept whole); front matter gives the title."""

from __future__ import annotations

import re

from rag_backend.parsing.base import ParsedDocument, SectionBuilder
from rag_backend.parsing.text import decode_text

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


def parse_markdown(data: bytes) -> ParsedDocument:
    text, title = _strip_front_matter(decode_text(data))
    first_h1: str | None = None
    builder = SectionBuilder("\n")
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
