"""Bounded truncation gives the very ids that tokenising the whole text and truncating it gives.

Checked on the service's two real tokenizers (through Embedder.tokenize and Reranker.tokenize) and on a
byte-level BPE and a Metaspace Unigram tokenizer trained here, over texts built to hurt a prefix cut: long words,
CJK, whitespace runs, combining accents, emoji, punctuation runs, special-token strings, control characters.
The cost side is checked on the running service in test_limits.py.
"""

from __future__ import annotations

import functools
import random
import time

import pytest
from conftest import EMBED_DIR, RERANK_DIR
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from ml_api.device import detect
from ml_api.embedding import Embedder
from ml_api.errors import InputTooLong
from ml_api.torch_reranker import Reranker
from ml_api.truncation import CHARS_PER_TOKEN, compactor, encode_all

PIECES = [
    lambda r: r.choice(["the", "immune", "response", "tokenization", "Über", "naïve", "déjà-vu"]),
    lambda r: "x" * r.randint(20, 400),  # long words (WordPiece: over 100 chars is one [UNK])
    lambda r: "".join(r.choice("東京都大阪府日本語中文字") for _ in range(r.randint(1, 60))),
    lambda r: r.choice([" ", "\t", "\n", "\u3000", "\u00a0"]) * r.randint(1, 300),
    lambda r: "e\u0301" * r.randint(1, 50),  # combining accents: NFD/NFC at the cut
    lambda r: "🙂👩‍👩‍👧" * r.randint(1, 20),
    lambda r: r.choice("!?.,;:-—()[]{}'\"") * r.randint(1, 40),
    lambda r: r.choice(["[SEP]", "[CLS]", "[MASK]", "<s>", "</s>", "<unk>"]),
    lambda r: "\x00\x01\x7f\u200b" * r.randint(1, 10),
    lambda r: str(r.randint(0, 10**30)),
    lambda r: r.choice(["é", "Ж", "9", "ǅ", "İ"]) * r.randint(90, 300),  # runs around WordPiece's 100-char limit
    lambda r: "".join(r.choice(" \t\n\r\u00a0\u2028\u3000\x0b\x0c\x1c\x85") for _ in range(r.randint(1, 200))),
    lambda r: r.choice(["\x00", "\u0301", "\u200b", "€", "🙂", "\ufffd", "\x85", "-", "東"]) * r.randint(90, 300),
    lambda r: "".join(r.choice("\x00\x01\u0301\u0302\u200b\ufeffab") for _ in range(r.randint(90, 400))),
]


def tricky_texts(count: int, seed: int, size: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts: list[str] = []
        while sum(map(len, parts)) < size:
            parts.append(rng.choice(PIECES)(rng))
            parts.append(rng.choice(["", " ", "  "]))
        texts.append("".join(parts))
    return texts


@functools.cache
def _trained(kind: str) -> str:
    corpus = tricky_texts(100, 7, 300)
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<s>", "</s>"], show_progress=False)
    else:
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
        trainer = trainers.UnigramTrainer(
            vocab_size=300, special_tokens=["<s>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
        )
    tok.train_from_iterator(corpus, trainer)
    return tok.to_str()


@pytest.mark.parametrize("kind", ["bpe", "unigram", "wordpiece"])
@pytest.mark.parametrize("direction", ["right", "left"])
def test_prefix_encoding_equals_full_truncation(kind: str, direction: str) -> None:
    if kind == "wordpiece":
        base = Tokenizer.from_file(str(EMBED_DIR / "tokenizer.json"))
    else:
        base = Tokenizer.from_str(_trained(kind))
    base.no_padding()
    base.no_truncation()
    for limit in (8, 32, 128):
        final = Tokenizer.from_str(base.to_str())
        final.enable_truncation(limit, direction=direction)
        texts = tricky_texts(60, limit, limit * CHARS_PER_TOKEN * 20)
        got = encode_all(base, final, texts, limit, direction, compact=compactor(base))  # type: ignore[arg-type]
        # The whole text through the same tokenizer object, then truncated (a trained Unigram's ties may break
        # differently in a copy of it, so `final.encode` is not the reference here; for WordPiece it is, below).
        want = [final.post_process(base.encode(text, add_special_tokens=False)) for text in texts]
        read_whole = 0
        for text, (encoding, whole), full in zip(texts, got, want, strict=True):
            assert encoding.ids == full.ids, (kind, direction, limit, text[:200])
            read_whole += whole
        assert read_whole < len(texts) // 2, "most long texts must be decided from a prefix"


def test_compaction_keeps_bert_ids_and_is_off_for_other_families() -> None:
    """Collapsed whitespace runs and shortened letter runs tokenise to the very same ids (BERT WordPiece only)."""
    for path in (EMBED_DIR, RERANK_DIR):
        tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        tok.no_truncation()
        compact = compactor(tok)
        assert compact is not None
        texts = tricky_texts(150, 11, 3000)
        assert sum(len(compact(t)) < len(t) for t in texts) > 100, "the rewrite must actually shorten them"
        for text in texts:
            assert tok.encode(compact(text)).ids == tok.encode(text).ids, text[:200]
    for kind in ("bpe", "unigram"):
        assert compactor(Tokenizer.from_str(_trained(kind))) is None


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(EMBED_DIR, detect("cpu", False))


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    return Reranker(RERANK_DIR, detect("cpu", False))


@pytest.mark.parametrize("direction", ["right", "left"])
def test_embedder_ids_match_full_tokenisation(embedder: Embedder, direction: str) -> None:
    texts = [*tricky_texts(40, 1, 12_000), "short text", "x" * 50_000 + " tail words"]
    reference = embedder._truncating[direction].encode_batch(texts)  # what tokenize did before bounding
    got = embedder.tokenize(texts, truncate=True, direction=direction)  # type: ignore[arg-type]
    assert [list(row) for row in got] == [e.ids for e in reference]
    assert all(len(row) <= embedder.max_length for row in got)


def test_reranker_pairs_match_full_tokenisation(reranker: Reranker) -> None:
    texts = [*tricky_texts(20, 2, 20_000), "short passage"]
    for query in ("a short query", tricky_texts(1, 3, 30_000)[0]):
        q = reranker.pairs._query_tok.encode(query, add_special_tokens=False)
        passages = reranker.pairs._text_tok.encode_batch(texts, add_special_tokens=False)
        reference = [reranker.pairs._pair_tok.post_process(q, p, add_special_tokens=True) for p in passages]
        got = reranker.tokenize(query, texts, truncate=True)
        assert [list(p.input_ids) for p in got] == [e.ids for e in reference]
        assert [list(p.token_type_ids) for p in got] == [e.type_ids for e in reference]


def test_untruncated_inputs_still_refused(embedder: Embedder, reranker: Reranker) -> None:
    huge = "word " * 1_000_000
    with pytest.raises(InputTooLong, match="more tokens than the model's 256"):
        embedder.tokenize(["ok", huge], truncate=False)
    with pytest.raises(InputTooLong, match="input 0 has 302 tokens"):
        embedder.tokenize(["word " * 300], truncate=False)
    assert len(embedder.tokenize(["word " * 254], truncate=False)[0]) == 256
    with pytest.raises(InputTooLong, match="query \\+ text 1 has more tokens than"):
        reranker.tokenize("q", ["ok", huge], truncate=False)
    with pytest.raises(InputTooLong, match="more tokens than"):
        reranker.tokenize(huge, ["ok"], truncate=False)


@pytest.mark.parametrize(
    "text",
    [
        "tokenisation cost grows with the text " * 210_000,
        "a" * 8_000_000,  # one word: WordPiece makes it one [UNK] however long it is
        " " * 8_000_000 + "the tail is all that counts",
        "é" * 4_000_000,
        "東京" * 2_000_000,
        "\x00" * 8_000_000 + " tail",
        "a" + "\u0301" * 4_000_000 + " tail",
    ],
    ids=["words", "one-word", "whitespace", "accented-word", "cjk", "nul", "combining"],
)
def test_huge_texts_cost_about_a_max_length_text(embedder: Embedder, reranker: Reranker, text: str) -> None:
    """8 MB of adversarial text: at most a few hundred ms of tokenising, not the 7-25 s of a full pass."""
    took = []
    for direction in ("right", "left"):
        started = time.perf_counter()
        [row] = embedder.tokenize([text], truncate=True, direction=direction)  # type: ignore[arg-type]
        took.append(time.perf_counter() - started)
        assert 2 < len(row) <= embedder.max_length
    started = time.perf_counter()
    [pair] = reranker.tokenize(text, [text], truncate=True)
    took.append((time.perf_counter() - started) / 2)  # query and document
    assert len(pair.input_ids) <= reranker.max_length
    assert max(took) < 1.5, took
