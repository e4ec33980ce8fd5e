"""Parse limits and the cheap checks that refuse an expansion bomb before a parser builds it in memory.

A 60 KB DOCX can hold tens of MB of XML, an HTML page millions of elements, a PDF thousands of pages: each is
small on the wire and huge once parsed. These checks read sizes and counts (ZIP directory, streamed member
bytes, tag counts) so such a file fails with the name of the limit it broke, in milliseconds; the child
process's memory and time limits (`parsing.isolated`) catch whatever the counts cannot predict.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rag_backend.parsing.base import ParseError

MB = 1024 * 1024
_BOMB_RATIO = 200  # deflate tops out near 1032:1; real Office XML stays well under 100:1
_BOMB_MIN_BYTES = 4 * MB  # small members may compress absurdly well (one repeated style) without harm
_HTML_TAG = re.compile(rb"<[A-Za-z]")
_CHUNK = 1 << 20
_MIN_ELEMENT_BYTES = 4  # "<a/>": a member of N bytes holds at most N/4 elements


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """One document's parse budget; each field names the setting users see in a refusal."""

    timeout_s: float = 120.0  # PARSE_TIMEOUT_S: wall clock, the child is killed past it
    max_memory_mb: int = 512  # PARSE_MAX_MEMORY_MB: the child's address space
    max_pages: int = 2000  # PARSE_MAX_PAGES: PDF pages
    max_expanded_mb: int = 128  # PARSE_MAX_EXPANDED_MB: DOCX uncompressed, PDF per decompressed stream
    max_elements: int = 300_000  # PARSE_MAX_ELEMENTS: HTML tags, DOCX XML elements, ZIP members

    @classmethod
    def from_settings(cls, settings: Any) -> ParseLimits:
        return cls(
            timeout_s=settings.parse_timeout_s,
            max_memory_mb=settings.parse_max_memory_mb,
            max_pages=settings.parse_max_pages,
            max_expanded_mb=settings.parse_max_expanded_mb,
            max_elements=settings.parse_max_elements,
        )

    @property
    def max_expanded_bytes(self) -> int:
        return self.max_expanded_mb * MB


def over(what: str, setting: str, limit: object) -> ParseError:
    """The one wording of a refusal: what the file has, and the setting that allows more."""
    return ParseError(f"{what}, over the parse limit {setting}={limit}")


def precheck(data: bytes, fmt: str, limits: ParseLimits) -> None:
    """Refuse a file whose counted size would exceed a limit; formats without such a count pass."""
    if fmt == "docx":
        check_docx(data, limits)
    elif fmt == "html":
        check_html(data, limits)


def check_html(data: bytes, limits: ParseLimits) -> None:
    tags = len(_HTML_TAG.findall(data))
    if tags > limits.max_elements:
        raise over(f"the HTML has {tags:,} elements", "PARSE_MAX_ELEMENTS", limits.max_elements)


def check_docx(data: bytes, limits: ParseLimits) -> None:
    """Declared sizes and ratios from the ZIP directory, then the XML members' real bytes, streamed and counted."""
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # the parser reports the corruption in its own words
    with package:
        members = package.infolist()
        if len(members) > limits.max_elements:
            raise over(f"the DOCX package has {len(members):,} files", "PARSE_MAX_ELEMENTS", limits.max_elements)
        declared = sum(m.file_size for m in members)
        if declared > limits.max_expanded_bytes:
            raise over(
                f"the DOCX expands to {declared / MB:.0f} MB uncompressed",
                "PARSE_MAX_EXPANDED_MB",
                limits.max_expanded_mb,
            )
        for m in members:
            if m.file_size >= _BOMB_MIN_BYTES and m.file_size > _BOMB_RATIO * max(1, m.compress_size):
                ratio = m.file_size // max(1, m.compress_size)
                raise ParseError(
                    f"the DOCX looks like a zip bomb: {m.filename} expands {ratio:,}:1 "
                    f"to {m.file_size / MB:.0f} MB (more than {_BOMB_RATIO}:1 is refused)"
                )
        xml = [m for m in members if m.filename.lower().endswith((".xml", ".rels"))]
        if sum(m.file_size for m in xml) >= _MIN_ELEMENT_BYTES * limits.max_elements:
            _count_xml(package, xml, limits)  # else too few bytes for too many elements (reads stop at declared sizes)


def _count_xml(package: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: ParseLimits) -> None:
    """Streams the XML members (never whole in memory), trusting no declared size, and counts their elements."""
    expanded = 0
    elements = 0
    for chunk in _xml_chunks(package, members):
        expanded += len(chunk)
        elements += chunk.count(b"<") - chunk.count(b"</") - chunk.count(b"<?") - chunk.count(b"<!")
        if expanded > limits.max_expanded_bytes:
            what = f"the DOCX's XML expands past {limits.max_expanded_mb} MB"
            raise over(what, "PARSE_MAX_EXPANDED_MB", limits.max_expanded_mb)
        if elements > limits.max_elements:
            what = f"the DOCX has more than {limits.max_elements:,} XML elements"
            raise over(what, "PARSE_MAX_ELEMENTS", limits.max_elements)


def _xml_chunks(package: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> Iterator[bytes]:
    for m in members:
        try:
            with package.open(m) as stream:
                while chunk := stream.read(_CHUNK):
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError):
            return  # a corrupt member: python-docx reports it in its own words
