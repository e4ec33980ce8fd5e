"""What every parser shares: the parsed shape, the two failures, and the heading-aware section builder.

Parsers raise only `ParseError` (the job fails with its message) or `UnsupportedFormat` (the upload is refused),
never a library's own exception; both are domain errors, so the API maps them like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rag_backend import errors

FORMATS = ("pdf", "docx", "html", "markdown", "text")

SUPPORTED_HINT = (
    "supported formats: PDF (.pdf), Word (.docx), HTML (.html, .htm), Markdown (.md, .markdown) "
    "and plain text (.txt, .csv, .json, .xml, .log, ...)"
)


class UnsupportedFormat(errors.UnsupportedFormat, ValueError):
    """The upload is a kind of file we do not ingest; the message says what it looks like and what is supported."""


class ParseError(errors.InvalidInput, ValueError):
    """The upload claims a supported format but is corrupt, encrypted, undecodable or has no text."""


@dataclass(slots=True)
class Section:
    text: str
    page: int | None = None  # 1-based, PDF only
    heading: str | None = None  # nearest heading


SECTION_SEPARATOR = "\n\n"  # between sections (PDF pages included) in a document's one parsed text


@dataclass(slots=True)
class ParsedDocument:
    format: str
    title: str | None
    sections: list[Section] = field(default_factory=list)

    def section_starts(self) -> list[int]:
        """Where each section begins in `text()`: chunk offsets are section offsets plus these."""
        starts, at = [], 0
        for section in self.sections:
            starts.append(at)
            at += len(section.text) + len(SECTION_SEPARATOR)
        return starts

    def text(self) -> str:
        """The document's parsed text, the one its chunks' `char_start`/`char_end` index (kept by the catalog and
        served as GET /api/documents/{id}/text): the sections, in order, joined by SECTION_SEPARATOR."""
        return SECTION_SEPARATOR.join(s.text for s in self.sections)


class SectionBuilder:
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


def collapse(text: str) -> str:
    return " ".join(text.split())


def reason(exc: BaseException) -> str:
    """A library exception as one short line for the document's error."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 200 else msg[:197] + "..."
