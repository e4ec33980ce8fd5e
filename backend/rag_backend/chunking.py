"""Token-aware chunking with overlap, measured with the embedding model's own tokenizer.

Chunks are windows of tokens mapped back to character offsets of their section, so a chunk's text is always
a verbatim slice of the parsed text, and the windows of a section together cover all of its non-whitespace text.
`Chunker.chunk` gives offsets into the document's whole parsed text (`ParsedDocument.text()`, what the catalog
keeps): `doc.text()[chunk.char_start:chunk.char_end] == chunk.text`, in Unicode code points.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from rag_backend.parsing import ParsedDocument

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Chunk:
    text: str
    position: int  # 0-based index within the document
    page: int | None
    heading: str | None
    char_start: int  # code-point offsets into the document's parsed text (ParsedDocument.text())
    char_end: int
    tokens: int  # tokens of `text` by the tokenizer in use (no special tokens)


@runtime_checkable
class TokenCounter(Protocol):
    """What the chunker needs from a tokenizer: token character spans and token counts."""

    name: str

    def offsets(self, text: str) -> list[tuple[int, int]]: ...

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


TokenizerLike = TokenCounter

_APPROX_TOKEN = re.compile(r"\w+|[^\w\s]")


class ApproximateTokenizer:
    """Word/punctuation counts for when the model's tokenizer.json is unavailable (WordPiece counts run ~20% higher)."""

    name = "approximate"

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _APPROX_TOKEN.finditer(text)]

    def count(self, text: str) -> int:
        return sum(1 for _ in _APPROX_TOKEN.finditer(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]


# Encoding one huge string is slow (superlinear in `tokenizers`); pieces of this size split at line breaks or spaces
# tokenise identically for whitespace-splitting tokenizers and go through encode_batch in parallel.
_ENCODE_PIECE = 8192


def _split_for_encoding(text: str, size: int = _ENCODE_PIECE) -> list[tuple[int, str]]:
    pieces: list[tuple[int, str]] = []
    pos, n = 0, len(text)
    while n - pos > size:
        lo, hi = pos + size // 2, pos + size
        cut = text.rfind("\n", lo, hi)
        if cut < 0:
            cut = max(text.rfind(" ", lo, hi), text.rfind("\t", lo, hi))
        cut = hi if cut < 0 else cut + 1
        pieces.append((pos, text[pos:cut]))
        pos = cut
    pieces.append((pos, text[pos:]))
    return pieces


class HFTokenizer:
    """A `tokenizers` tokenizer.json (the embedder's own), without truncation or padding."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        self.name = str(path)
        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()

    def offsets(self, text: str) -> list[tuple[int, int]]:
        pieces = _split_for_encoding(text)
        if len(pieces) == 1:
            return list(self._tok.encode(text, add_special_tokens=False).offsets)
        encodings = self._tok.encode_batch([p for _, p in pieces], add_special_tokens=False)
        out: list[tuple[int, int]] = []
        for (base, _), enc in zip(pieces, encodings, strict=True):
            out.extend([(s + base, e + base) for s, e in enc.offsets])
        return out

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(enc.ids) for enc in self._tok.encode_batch(list(texts), add_special_tokens=False)]


def load_tokenizer(path: str | Path | None) -> TokenCounter:
    """The tokenizer.json at `path` (a file or a directory holding one); the approximate one if it is absent.

    A file that exists but does not load raises ValueError: a broken model directory should fail loudly.
    """
    if path is None or str(path) == "":
        return ApproximateTokenizer()
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        log.warning("tokenizer %s not found; using approximate token counts", p)
        return ApproximateTokenizer()
    try:
        return HFTokenizer(p)
    except Exception as exc:
        raise ValueError(f"cannot load tokenizer {p}: {exc}") from exc


_SENTENCE_END = frozenset(".!?。！？…")
_CLOSERS = frozenset("\"')]}»”’")
_SNAP_REGION = 0.4  # sentence/paragraph ends are looked for in this last fraction of a window


class Chunker:
    """Splits parsed sections into windows of at most `chunk_tokens` tokens that overlap by about `overlap_tokens`.

    `max_chars` (default 16 characters per token) also caps a chunk's length, so text that tokenises into very
    few tokens (a 5,000-character "word" is a single [UNK] for WordPiece) is still hard-cut into bounded chunks.
    """

    def __init__(
        self,
        tokenizer: TokenCounter,
        chunk_tokens: int = 256,
        overlap_tokens: int = 32,
        *,
        max_chars: int | None = None,
    ) -> None:
        if not isinstance(chunk_tokens, int) or chunk_tokens < 16:
            raise ValueError(f"chunk_tokens must be an integer >= 16, got {chunk_tokens!r}")
        if not isinstance(overlap_tokens, int) or overlap_tokens < 0 or 2 * overlap_tokens >= chunk_tokens:
            raise ValueError(
                f"overlap_tokens must be an integer with 0 <= overlap < chunk_tokens / 2, got {overlap_tokens!r}"
            )
        if max_chars is None:
            max_chars = chunk_tokens * 16
        if not isinstance(max_chars, int) or max_chars < chunk_tokens:
            raise ValueError(f"max_chars must be an integer >= chunk_tokens, got {max_chars!r}")
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.max_chars = max_chars

    def chunk(self, doc: ParsedDocument) -> list[Chunk]:
        """Every section's chunks, numbered in order, with offsets into `doc.text()`."""
        chunks: list[Chunk] = []
        for section, base in zip(doc.sections, doc.section_starts(), strict=True):
            chunks.extend(
                self.chunk_text(
                    section.text, page=section.page, heading=section.heading, first_position=len(chunks), base=base
                )
            )
        return chunks

    def chunk_text(
        self,
        text: str,
        *,
        page: int | None = None,
        heading: str | None = None,
        first_position: int = 0,
        base: int = 0,
    ) -> list[Chunk]:
        """Chunks of one section's text; offsets are into `text`, plus `base` (where it starts in its document)."""
        spans = self._spans(text)
        return [
            Chunk(
                text=text[cs:ce],
                position=first_position + i,
                page=page,
                heading=heading,
                char_start=base + cs,
                char_end=base + ce,
                tokens=tokens,
            )
            for i, (cs, ce, tokens) in enumerate(spans)
        ]

    # -- internals ----------------------------------------------------------------------------------------------------
    def _spans(self, text: str) -> list[tuple[int, int, int]]:
        """(char_start, char_end, tokens) per chunk, whitespace-trimmed."""
        if not text.strip():
            return []
        offsets = self.tokenizer.offsets(text)
        if not offsets:  # text the tokenizer drops entirely (control characters): keep it whole
            cs, ce = _trim(text, 0, len(text))
            return [(cs, ce, 0)] if ce > cs else []
        starts, ends = self._token_bounds(offsets)
        spans = self._windows(text, starts, ends, verify=False)
        if not any(glued for _, _, _, glued in spans):  # every cut between words: a window's tokens are its own
            return [(cs, ce, n) for cs, ce, n, _ in spans]
        counts = self.tokenizer.count_many([text[cs:ce] for cs, ce, _, _ in spans])
        if max(counts) > self.chunk_tokens:
            # Only after a cut inside a word can re-tokenising a chunk give more tokens than its window
            # (the fragment loses its "##" continuation); redo this section checking each window.
            spans = self._windows(text, starts, ends, verify=True)
            counts = self.tokenizer.count_many([text[cs:ce] for cs, ce, _, _ in spans])
        return [(cs, ce, n) for (cs, ce, _, _), n in zip(spans, counts, strict=True)]

    def _token_bounds(self, offsets: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
        """Token starts/ends, with tokens longer than max_chars split so that every window can hold one."""
        limit = self.max_chars
        starts: list[int] = []
        ends: list[int] = []
        for s, e in offsets:
            if e - s > limit:
                for piece in range(s, e, limit):
                    starts.append(piece)
                    ends.append(min(piece + limit, e))
            else:
                starts.append(s)
                ends.append(e)
        return starts, ends

    def _windows(
        self, text: str, starts: list[int], ends: list[int], *, verify: bool
    ) -> list[tuple[int, int, int, bool]]:
        """(char_start, char_end, tokens in the window, cut inside a word) per window."""
        n = len(starts)
        size, overlap = self.chunk_tokens, self.overlap_tokens
        out: list[tuple[int, int, int, bool]] = []
        first = 0
        while True:
            # Largest window from `first` within both the token and the character budget (never empty).
            hi = bisect_right(ends, starts[first] + self.max_chars, first + 1, min(n, first + size))
            end = n if hi >= n else self._snap_end(text, starts, ends, first, hi)
            cs = 0 if first == 0 else starts[first]
            ce = len(text) if end >= n else starts[end]  # up to the next token: nothing between windows is lost
            if verify:
                while end > first + 1 and self.tokenizer.count(text[cs:ce]) > size:
                    end -= 1
                    ce = starts[end]
            cs, ce = _trim(text, cs, ce)
            glued = (end < n and starts[end] <= ends[end - 1]) or (first > 0 and starts[first] <= ends[first - 1])
            if ce > cs:
                out.append((cs, ce, end - first, glued))
            if end >= n:
                return out
            nxt = max(end - overlap, first + 1)
            while nxt < end and starts[nxt] <= ends[nxt - 1]:  # overlap starts at a word start
                nxt += 1
            first = nxt

    @staticmethod
    def _snap_end(text: str, starts: list[int], ends: list[int], first: int, hi: int) -> int:
        """Window end (exclusive token index) at a sentence/paragraph end, else a word end, else `hi`."""
        lo = max(first + 1, hi - int((hi - first) * _SNAP_REGION))
        for e in range(hi, lo - 1, -1):
            gap_start, gap_end = ends[e - 1], starts[e]
            if gap_end <= gap_start:
                continue  # the next token is glued to this one: not a boundary
            if "\n" in text[gap_start:gap_end]:
                return e
            last = text[gap_start - 1]
            if last in _SENTENCE_END:
                return e
            if last in _CLOSERS and e - 2 >= first and ends[e - 2] == starts[e - 1]:
                prev = text[ends[e - 2] - 1]
                if prev in _SENTENCE_END:
                    return e
        for e in range(hi, first, -1):
            if starts[e] > ends[e - 1]:
                return e
        return hi


def _trim(text: str, cs: int, ce: int) -> tuple[int, int]:
    segment = text[cs:ce]
    stripped = segment.lstrip()
    cs += len(segment) - len(stripped)
    return cs, cs + len(stripped.rstrip())
