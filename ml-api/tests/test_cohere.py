"""Cohere v1/v2 embed and rerank through the official `cohere` client, and the quantisation formulas behind them."""

from __future__ import annotations

import base64
import time
import uuid

import cohere
import numpy as np
import pytest
from cohere.core.api_error import ApiError
from conftest import RERANK_DIR
from sentence_transformers.util.quantization import quantize_embeddings
from tokenizers import Tokenizer

from ml_api.device import detect
from ml_api.embedding_types import by_type, to_base64, to_binary, to_int8, to_ubinary, to_uint8
from ml_api.errors import InvalidInput

QUERY = "what is a giant panda?"
DOCS = [
    "Paris is the capital of France.",
    "The giant panda is a bear species endemic to China.",
    "Pandas is a Python library for data analysis.",
    "Bamboo makes up most of a panda's diet.",
]
TEXTS = ["first text", "second, longer text about proteins and their folding", "a third one"]
LONG = "the weather report said rain " * 80 + "the giant panda is a bear that eats bamboo"


@pytest.fixture(scope="module")
def co2(server) -> cohere.ClientV2:
    return cohere.ClientV2(base_url=server.url, api_key="unused", timeout=120, max_retries=0)


@pytest.fixture(scope="module")
def co1(server) -> cohere.Client:
    return cohere.Client(base_url=server.url, api_key="unused", timeout=120, max_retries=0)


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def refused(exc: pytest.ExceptionInfo[ApiError], status: int) -> str:
    """The OpenAI-shaped body every /v1 and /v2 error has; returns its message."""
    assert exc.value.status_code == status, exc.value.body
    error = exc.value.body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    return error["message"]


# --- quantisation: pure numpy ---


@pytest.mark.parametrize("dim", [384, 20])
def test_binary_is_sentence_transformers_packing(dim: int) -> None:
    m = unit_rows(5, dim)
    assert np.array_equal(to_ubinary(m), quantize_embeddings(m, "ubinary"))
    assert np.array_equal(to_binary(m), quantize_embeddings(m, "binary"))
    assert to_ubinary(m).dtype == np.uint8 and to_binary(m).dtype == np.int8
    assert to_ubinary(m).shape == (5, -(-dim // 8))  # padded with 0 bits past a multiple of 8
    assert np.array_equal(np.unpackbits(to_ubinary(m), axis=-1)[:, :dim], m > 0)  # the sign of each dimension
    assert np.array_equal(to_ubinary(m).astype(int), to_binary(m).astype(int) + 128)


def test_int8_is_a_fixed_symmetric_scale() -> None:
    m = unit_rows(50, 384)
    q = to_int8(m)
    assert q.dtype == np.int8 and q.min() >= -127 and q.max() <= 127
    assert np.array_equal(to_int8(-m), -q)  # symmetric: 0 stays 0, -x gives -q
    assert np.abs(q / 127 - m).max() <= 1 / 254 + 1e-7
    assert cosines(q / 127, m).min() >= 0.998  # random directions; real embeddings: see the embed test
    assert np.array_equal(to_uint8(m).astype(int), q.astype(int) + 128) and to_uint8(m).min() >= 1
    assert to_int8(np.array([[2.0, -3.0, 0.0]])).tolist() == [[127, -127, 0]]  # clipped, never wrapped
    # The same vector quantises the same in any batch (no calibration on the batch, unlike min/max ranges).
    assert np.array_equal(to_int8(m[:1]), q[:1])


def test_base64_is_little_endian_float32() -> None:
    m = unit_rows(3, 384)
    decoded = np.stack([np.frombuffer(base64.b64decode(s), dtype="<f4") for s in to_base64(m)])
    assert np.array_equal(decoded, m)


def test_by_type_keeps_request_order_once() -> None:
    m = unit_rows(2, 16)
    out = by_type(m[:, :8], ["ubinary", "float", "ubinary"])  # a column cut: not contiguous
    assert list(out) == ["ubinary", "float"] and out["float"].flags.c_contiguous
    with pytest.raises(InvalidInput, match="float16"):
        by_type(m, ["float16"])


# --- rerank ---


def test_v2_rerank_ranks_and_scores_like_tei(co2, http) -> None:
    res = co2.rerank(model="rr", query=QUERY, documents=DOCS)
    tei = http.post("/rerank", json={"query": QUERY, "texts": DOCS}).json()
    assert [r.index for r in res.results] == [t["index"] for t in tei]
    assert [r.relevance_score for r in res.results] == pytest.approx([t["score"] for t in tei], abs=1e-5)
    assert all(0 < r.relevance_score < 1 for r in res.results)
    uuid.UUID(res.id)
    assert res.meta.api_version.version == "2" and res.meta.billed_units.search_units == 1


def test_v2_rerank_top_n_and_return_documents(co2, http) -> None:
    res = co2.rerank(model="rr", query=QUERY, documents=DOCS, top_n=2)
    assert len(res.results) == 2 and not hasattr(res.results[0], "document")
    extra = {"additional_body_parameters": {"return_documents": True}}
    with_docs = co2.rerank(model="rr", query=QUERY, documents=DOCS, top_n=2, request_options=extra)
    assert [r.index for r in with_docs.results] == [r.index for r in res.results]
    assert [dict(r.document) for r in with_docs.results] == [{"text": DOCS[r.index]} for r in res.results]
    body = {"query": QUERY, "documents": DOCS, "top_n": 1, "return_documents": True}  # as curl sends it
    [top] = http.post("/v2/rerank", json=body).json()["results"]
    assert top["document"] == {"text": DOCS[top["index"]]}


def test_v2_rerank_max_tokens_per_doc_cuts_the_document_alone(co2, http) -> None:
    """The cap cuts the document (not the query) to its first N tokens: the same as sending it cut."""
    cap = 12
    tokenizer = Tokenizer.from_file(str(RERANK_DIR / "tokenizer.json"))
    tokenizer.no_truncation()
    encoding = tokenizer.encode(LONG, add_special_tokens=False)
    cut = LONG[: encoding.offsets[cap - 1][1]]
    assert tokenizer.encode(cut, add_special_tokens=False).ids == encoding.ids[:cap]
    docs = [LONG, DOCS[1]]

    def scores(documents: list[str], **kw: int) -> dict[int, float]:
        res = co2.rerank(model="rr", query=QUERY, documents=documents, **kw)
        return {r.index: r.relevance_score for r in res.results}

    whole, capped = scores(docs), scores(docs, max_tokens_per_doc=cap)
    assert capped[0] != pytest.approx(whole[0], abs=1e-3)  # the panda sentence at the end is cut away
    assert capped[0] == pytest.approx(scores([cut, DOCS[1]])[0], abs=1e-5)
    assert capped[1] == pytest.approx(whole[1], abs=1e-5)  # a short document is untouched
    tei = http.post("/rerank", json={"query": QUERY * 5, "texts": [cut]}).json()[0]["score"]
    long_query = co2.rerank(model="rr", query=QUERY * 5, documents=[LONG], max_tokens_per_doc=cap).results[0]
    assert long_query.relevance_score == pytest.approx(tei, abs=1e-5)  # the query does not count against it


def test_reranker_caps_documents_alone_in_both_modes() -> None:
    """Reranker.tokenize(max_doc_tokens=N): each pair is the query with the document's first N tokens, whether
    truncating or not, and a capped 9 MB document is read only as far as the cap needs."""
    from ml_api.torch_reranker import Reranker

    reranker = Reranker(RERANK_DIR, detect("cpu", False))
    cap, huge = 12, LONG * 4000  # 9 MB: reading it all would take seconds (about 1 µs a character)
    tokenizer = Tokenizer.from_file(str(RERANK_DIR / "tokenizer.json"))
    tokenizer.no_truncation()  # the file's own setting is a pair truncation
    first = tokenizer.encode(LONG, add_special_tokens=False).ids[:cap]
    for truncate in (True, False):
        for doc in (LONG, huge):
            started = time.perf_counter()
            [pair] = reranker.tokenize(QUERY, [doc], truncate, max_doc_tokens=cap)
            assert time.perf_counter() - started < 0.5
            query = tokenizer.encode(QUERY, add_special_tokens=False).ids
            assert pair.input_ids.tolist() == [101, *query, 102, *first, 102]
            assert pair.token_type_ids.tolist() == [0] * (len(query) + 2) + [1] * (cap + 1)
    [uncapped] = reranker.tokenize(QUERY, [DOCS[1]], True, max_doc_tokens=10_000)  # a cap past the text: no-op
    assert uncapped.input_ids.tolist() == reranker.tokenize(QUERY, [DOCS[1]])[0].input_ids.tolist()


# --- embed ---


def test_v2_embed_float_matches_tei(co2, http) -> None:
    res = co2.embed(model="m", texts=TEXTS, input_type="search_document", embedding_types=["float"])
    ours = np.asarray(res.embeddings.float_)
    tei = np.asarray(http.post("/embed", json={"inputs": TEXTS}).json())
    assert ours.shape == (3, 384) and cosines(ours, tei).min() >= 0.9999
    assert res.texts == TEXTS and res.response_type == "embeddings_by_type"
    assert res.embeddings.int8 is None and res.embeddings.binary is None  # only what was asked for
    assert res.meta.api_version.version == "2" and res.meta.billed_units.input_tokens > 0
    uuid.UUID(res.id)
    default = co2.embed(model="m", texts=TEXTS, input_type="search_query")  # no embedding_types: float
    assert np.allclose(np.asarray(default.embeddings.float_), ours, atol=1e-6)


def test_v2_embed_every_type_is_its_documented_conversion(co2) -> None:
    types = ["float", "int8", "uint8", "binary", "ubinary", "base64"]
    e = co2.embed(model="m", texts=TEXTS, input_type="clustering", embedding_types=types).embeddings
    floats = np.asarray(e.float_, dtype=np.float32)
    int8, uint8 = np.asarray(e.int8), np.asarray(e.uint8)
    binary, ubinary = np.asarray(e.binary), np.asarray(e.ubinary)
    assert int8.shape == uint8.shape == (3, 384) and binary.shape == ubinary.shape == (3, 48)
    assert np.array_equal(int8, to_int8(floats)) and -127 <= int8.min() and int8.max() <= 127
    assert cosines(int8 / 127, floats).min() >= 0.998
    assert np.array_equal(uint8, int8 + 128) and 0 <= uint8.min() and uint8.max() <= 255
    assert np.array_equal(ubinary, to_ubinary(floats)) and np.array_equal(binary, ubinary - 128)
    assert np.array_equal(np.unpackbits(ubinary.astype(np.uint8), axis=-1), floats > 0)
    decoded = np.stack([np.frombuffer(base64.b64decode(s), dtype="<f4") for s in e.base64])
    assert np.array_equal(decoded, floats)


def test_v2_embed_output_dimension(co2) -> None:
    full = np.asarray(co2.embed(model="m", texts=TEXTS, input_type="search_query").embeddings.float_)
    res = co2.embed(
        model="m", texts=TEXTS, input_type="search_query", output_dimension=128, embedding_types=["float", "binary"]
    )
    cut = np.asarray(res.embeddings.float_)
    assert cut.shape == (3, 128) and np.allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-5)
    assert np.allclose(cut, full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True), atol=1e-6)
    assert np.asarray(res.embeddings.binary).shape == (3, 16)


def test_v2_embed_truncate_sides(co2, http) -> None:
    """END (the default) keeps the start like TEI's right truncation; START keeps the end like its left one."""
    for side, direction in (("END", "right"), ("START", "left")):
        res = co2.embed(model="m", texts=[LONG], input_type="search_document", truncate=side)
        tei = http.post("/embed", json={"inputs": [LONG], "truncation_direction": direction}).json()
        assert cosines(np.asarray(res.embeddings.float_), np.asarray(tei))[0] >= 0.9999
    with pytest.raises(ApiError) as exc:
        co2.embed(model="m", texts=["short", LONG], input_type="search_document", truncate="NONE")
    assert "input 1" in refused(exc, 413) and "256" in exc.value.body["error"]["message"]


def test_v1_embed_with_the_v1_client(co1, co2) -> None:
    res = co1.embed(texts=TEXTS, model="m", input_type="search_query")
    assert res.response_type == "embeddings_floats" and res.texts == TEXTS
    floats = np.asarray(res.embeddings)
    v2 = np.asarray(co2.embed(model="m", texts=TEXTS, input_type="search_query").embeddings.float_)
    assert np.allclose(floats, v2, atol=1e-6)
    assert res.meta.api_version.version == "1"
    typed = co1.embed(texts=TEXTS, model="m", input_type="search_query", embedding_types=["float", "ubinary"])
    assert typed.response_type == "embeddings_by_type"
    assert np.allclose(np.asarray(typed.embeddings.float_), floats, atol=1e-6)
    assert np.array_equal(np.asarray(typed.embeddings.ubinary), to_ubinary(floats.astype(np.float32)))


# --- refusals: a 4xx with OpenAI's error body and the reason ---


def test_v2_embed_refusals_say_why(co2) -> None:
    def refuse(status: int = 422, **kw: object) -> str:
        with pytest.raises(ApiError) as exc:
            co2.embed(**{"model": "m", "texts": TEXTS, "input_type": "search_query", **kw})
        return refused(exc, status)

    assert "embedding_types" in refuse(embedding_types=["float16"]) and "'int8'" in refuse(embedding_types=["x"])
    assert "input_type: 'image' is not supported" in refuse(input_type="image")
    assert "output_dimension=10000 exceeds the model's 384" in refuse(output_dimension=10000)
    assert "texts" in refuse(texts=[])
    assert "texts[1] is empty" in refuse(texts=["a", " "])
    assert "max_tokens=8 is below the model's max length 256" in refuse(max_tokens=8)
    assert "text only" in refuse(texts=None, images=["data:image/png;base64,AAAA"])


def test_v1_embed_refusal(co1) -> None:
    with pytest.raises(ApiError) as exc:
        co1.embed(texts=[], model="m", batching=False)  # the batching client refuses [] before sending
    assert "texts" in refused(exc, 422)


def test_v2_rerank_refusals_say_why(co2, http) -> None:
    with pytest.raises(ApiError) as exc:
        co2.rerank(model="rr", query=QUERY, documents=DOCS, max_tokens_per_doc=0)
    assert "max_tokens_per_doc" in refused(exc, 422)
    with pytest.raises(ApiError) as exc:
        co2.rerank(model="rr", query=QUERY, documents=[])
    assert "documents" in refused(exc, 422)
    with pytest.raises(ApiError) as exc:
        co2.rerank(model="rr", query=QUERY, documents=DOCS, relevant_spans={"mode": "enabled"})
    assert "relevant spans are not supported" in refused(exc, 422)
    for field, value in (("top_n", True), ("max_tokens_per_doc", "12"), ("return_documents", 1)):  # not coerced
        res = http.post("/v2/rerank", json={"query": QUERY, "documents": DOCS, field: value})
        assert res.status_code == 422 and res.json()["error"]["param"] == field, res.text
