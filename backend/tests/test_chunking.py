"""Chunking invariants, checked with the approximate tokenizer always and the embedder's tokenizer.json when present."""

from __future__ import annotations

import random
import time
from itertools import pairwise
from pathlib import Path

import pytest

from rag_backend.chunking import ApproximateTokenizer, Chunk, Chunker, HFTokenizer, TokenCounter, load_tokenizer
from rag_backend.parsing import ParsedDocument, Section

REAL_TOKENIZER = Path(__file__).resolve().parents[2] / "models" / "all-MiniLM-L6-v2" / "tokenizer.json"

_WORDS = (
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega retrieval embedding vector index "
    "café naïve résumé internationalisation tokenizer chunk overlap boundary"
).split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 18))]
    if rng.random() < 0.3:
        words.insert(rng.randint(1, len(words) - 1), f"{rng.choice(_WORDS)},")
    return " ".join(words).capitalize() + rng.choice(".!?.")


def _text(n_chars: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    paragraphs: list[str] = []
    size = 0
    while size < n_chars:
        p = " ".join(_sentence(rng) for _ in range(rng.randint(2, 7)))
        paragraphs.append(p)
        size += len(p) + 2
    return "\n\n".join(paragraphs)


@pytest.fixture(scope="module")
def real_tokenizer() -> TokenCounter:
    if not REAL_TOKENIZER.is_file():
        pytest.skip(f"{REAL_TOKENIZER} not prepared yet")
    return load_tokenizer(REAL_TOKENIZER)


@pytest.fixture(params=["approximate", "real"])
def tokenizer(request: pytest.FixtureRequest) -> TokenCounter:
    if request.param == "approximate":
        return load_tokenizer(None)
    return request.getfixturevalue("real_tokenizer")


def _assert_covers(text: str, chunks: list[Chunk], base: int = 0) -> None:
    """Every non-whitespace character of the section (at `base` in its document) lies inside some chunk."""
    covered = bytearray(len(text))
    for c in chunks:
        start, end = c.char_start - base, c.char_end - base
        assert c.text == text[start:end]
        assert c.text and c.text == c.text.strip()
        covered[start:end] = b"\x01" * (end - start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"uncovered chars at {missing[:10]}"


# -- tokenizers ------------------------------------------------------------------------------------------------------


def test_load_tokenizer_fallbacks(tmp_path: Path) -> None:
    assert load_tokenizer(None).name == "approximate"
    assert load_tokenizer(tmp_path / "missing.json").name == "approximate"
    assert load_tokenizer(tmp_path).name == "approximate"  # a directory without tokenizer.json
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot load tokenizer"):
        load_tokenizer(tmp_path)


def test_approximate_offsets() -> None:
    tok = ApproximateTokenizer()
    assert tok.offsets("Hi, café!") == [(0, 2), (2, 3), (4, 8), (8, 9)]
    assert tok.count("Hi, café!") == 4


def test_real_tokenizer_loads_from_directory(real_tokenizer: TokenCounter) -> None:
    tok = load_tokenizer(REAL_TOKENIZER.parent)
    assert isinstance(tok, HFTokenizer) and tok.name == str(REAL_TOKENIZER)
    text = "Naïve café " * 5000  # long enough to be encoded in pieces
    offsets = tok.offsets(text)
    assert len(offsets) == tok.count(text) == 10_000  # no special tokens, no truncation
    assert text[offsets[-1][0] : offsets[-1][1]] == "café"


# -- chunker ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk_tokens", "overlap"), [(15, 0), (16, 8), (64, 40), (64, -1), (256, 128), (2.5, 0), (64, 1.5)]
)
def test_invalid_parameters(chunk_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        Chunker(ApproximateTokenizer(), chunk_tokens, overlap)


def test_valid_edge_parameters() -> None:
    Chunker(ApproximateTokenizer(), 16, 7)
    Chunker(ApproximateTokenizer(), 16, 0)
    with pytest.raises(ValueError):
        Chunker(ApproximateTokenizer(), 64, 8, max_chars=10)


def test_long_section_budget_overlap_sentences_coverage(tokenizer: TokenCounter) -> None:
    text = _text(20_000)
    chunker = Chunker(tokenizer, chunk_tokens=64, overlap_tokens=12)
    chunks = chunker.chunk(ParsedDocument("text", None, [Section(text)]))
    assert len(chunks) > 10
    assert [c.position for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.tokens == tokenizer.count(c.text) <= 64
    _assert_covers(text, chunks)
    for a, b in pairwise(chunks):
        assert b.char_start < a.char_end, "consecutive chunks should overlap"
        assert b.char_start > a.char_start, "windows must advance"
        assert text[b.char_start - 1].isspace(), "overlap starts at a word start"
    # sentences are ~10-25 tokens, so a sentence end lies in the last 40% of nearly every window
    sentence_ends = sum(c.text[-1] in ".!?" for c in chunks[:-1])
    assert sentence_ends >= 0.9 * (len(chunks) - 1)


def test_real_token_budget_holds(real_tokenizer: TokenCounter) -> None:
    """Counts by the embedder's tokenizer, on text that WordPiece splits into many more pieces than words."""
    rng = random.Random(3)
    words = ["".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(3, 12))) for _ in range(3000)]
    text = " ".join(words)
    chunks = Chunker(real_tokenizer, chunk_tokens=32, overlap_tokens=4).chunk_text(text)
    assert all(real_tokenizer.count(c.text) == c.tokens <= 32 for c in chunks)
    _assert_covers(text, chunks)


def test_real_budget_holds_after_cuts_inside_words(real_tokenizer: TokenCounter) -> None:
    """Words of 60-99 letters are dozens of WordPiece tokens: cut mid-word, a fragment re-tokenises differently."""
    rng = random.Random(0)
    letters = "qwertyuiopasdfghjklzxcvbnm"
    text = " ".join("".join(rng.choice(letters) for _ in range(rng.randint(60, 99))) for _ in range(50))
    chunks = Chunker(real_tokenizer, chunk_tokens=16, overlap_tokens=4).chunk_text(text)
    assert all(real_tokenizer.count(c.text) == c.tokens <= 16 for c in chunks)
    _assert_covers(text, chunks)


def test_short_sections_carry_page_and_heading(tokenizer: TokenCounter) -> None:
    doc = ParsedDocument(
        "pdf",
        "T",
        [
            Section("Page one text.", page=1, heading=None),
            Section("   \n  ", page=2),  # whitespace only: no chunk
            Section("# Intro\n\nShort intro.", page=3, heading="Intro"),
            Section(_text(3000, seed=1), page=4, heading="Body"),
        ],
    )
    chunks = Chunker(tokenizer, chunk_tokens=64, overlap_tokens=8).chunk(doc)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert (chunks[0].text, chunks[0].page, chunks[0].heading) == ("Page one text.", 1, None)
    assert (chunks[1].text, chunks[1].page, chunks[1].heading) == ("# Intro\n\nShort intro.", 3, "Intro")
    whole = doc.text()  # offsets index the document's parsed text: the sections joined
    assert all(whole[c.char_start : c.char_end] == c.text for c in chunks)
    assert chunks[1].char_start == whole.index("# Intro") and chunks[1].char_end == chunks[1].char_start + len(
        doc.sections[2].text
    )
    body = [c for c in chunks if c.heading == "Body"]
    assert len(body) > 1 and all(c.page == 4 for c in body)
    _assert_covers(doc.sections[3].text, body, base=doc.section_starts()[3])


def test_paragraph_boundary_preferred(tokenizer: TokenCounter) -> None:
    """Paragraphs without final punctuation still cut at the blank line."""
    paragraph = " ".join(["word"] * 12)
    text = "\n\n".join([paragraph] * 20)
    chunks = Chunker(tokenizer, chunk_tokens=40, overlap_tokens=0).chunk_text(text)
    for c in chunks[:-1]:
        assert text[c.char_end : c.char_end + 2] == "\n\n"
    _assert_covers(text, chunks)


def test_giant_word_is_hard_cut(tokenizer: TokenCounter) -> None:
    word = "x" * 5000
    text = f"Before the blob. {word} After the blob."
    chunker = Chunker(tokenizer, chunk_tokens=64, overlap_tokens=8)
    chunks = chunker.chunk_text(text)
    assert len(chunks) > 1
    assert all(len(c.text) <= chunker.max_chars for c in chunks)
    assert all(c.tokens <= 64 for c in chunks)
    _assert_covers(text, chunks)


def test_long_unbroken_token_run_is_hard_cut(tokenizer: TokenCounter) -> None:
    """Many tokens with no whitespace at all (e.g. a base64-ish or punctuation run) still fit the budget."""
    text = "a.b-" * 2000
    chunks = Chunker(tokenizer, chunk_tokens=32, overlap_tokens=4).chunk_text(text)
    assert all(tokenizer.count(c.text) == c.tokens <= 32 for c in chunks)
    _assert_covers(text, chunks)


def test_no_empty_chunks_from_blank_text(tokenizer: TokenCounter) -> None:
    chunker = Chunker(tokenizer, 32, 4)
    assert chunker.chunk_text("") == []
    assert chunker.chunk_text(" \n\n\t ") == []
    assert [c.text for c in chunker.chunk_text("\n\n  hello  \n")] == ["hello"]


def test_one_megabyte_is_fast(tokenizer: TokenCounter) -> None:
    text = _text(1_000_000, seed=11)
    chunker = Chunker(tokenizer, chunk_tokens=256, overlap_tokens=32)
    start = time.perf_counter()
    chunks = chunker.chunk(ParsedDocument("text", None, [Section(text)]))
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"1 MB took {elapsed:.2f}s"
    assert max(c.tokens for c in chunks) <= 256
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text.rstrip())
    # spot-check coverage cheaply: consecutive chunks touch or overlap
    assert all(b.char_start <= a.char_end for a, b in pairwise(chunks))
