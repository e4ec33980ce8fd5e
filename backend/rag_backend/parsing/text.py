"""Text decoding (BOMs, UTF-8, then a guessed charset) and the plain-text parser."""

from __future__ import annotations

import codecs

from rag_backend.parsing.base import ParsedDocument, ParseError, Section

BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE: it shares the first two bytes
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_PREFERRED_SINGLE_BYTE = ("cp1252", "latin_1", "iso8859_15")


def normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def decode_text(data: bytes) -> str:
    """UTF-8 (BOMs honoured) first, else charset-normalizer; newlines normalised to \\n and NULs removed."""
    for bom, enc in BOMS:
        if data.startswith(bom):
            try:
                return normalise(data[len(bom) :].decode(enc))
            except UnicodeDecodeError as exc:
                raise ParseError(f"text is not valid {enc} despite its byte-order mark") from exc
    try:
        return normalise(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return normalise(_decode_guess(data))


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


def parse_text(data: bytes) -> ParsedDocument:
    text = decode_text(data).strip()
    return ParsedDocument(format="text", title=None, sections=[Section(text=text)] if text else [])
