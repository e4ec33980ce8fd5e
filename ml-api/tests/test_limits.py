"""Hostile input on every text and number field: a 4xx with the reason, never a 500; huge texts stay cheap.

Hand-written cases for what the fuzzer (test_fuzz.py) does not generate: JSON escapes of lone UTF-16
surrogates, NUL, raw invalid UTF-8, numbers past float range or Python's 4300-digit limit, a body without a
Content-Type, an 8 MB text. Also: /docs works offline (every asset it names is served by the service itself).
"""

from __future__ import annotations

import re

import pytest
from conftest import reason

JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": "Bearer s3cret"}
BIG_DIGITS = "9" * 400

# (path, raw JSON body with a lone surrogate escape, text expected in the reason)
SURROGATES = [
    ("/embed", '{"inputs": "\\ud800"}', "inputs[0] contains a lone UTF-16 surrogate (U+D800) at character 0"),
    ("/embed", '{"inputs": ["ok", "ab\\udc00"]}', "inputs[1] contains a lone UTF-16 surrogate (U+DC00) at character 2"),
    ("/embed", '{"inputs": "x", "truncation_direction": "\\ud800"}', "truncation_direction"),
    ("/rerank", '{"query": "\\ud800", "texts": ["a"]}', "query"),
    ("/rerank", '{"query": "q", "texts": ["a", "\\udfff"]}', "texts[1] contains a lone UTF-16 surrogate"),
    ("/v1/embeddings", '{"input": "\\ud83d"}', "input[0] contains a lone UTF-16 surrogate (U+D83D)"),
    ("/v1/embeddings", '{"input": "x", "model": "m\\ud800"}', "model: contains a lone UTF-16"),
    ("/v1/embeddings", '{"input": "x", "user": "\\ud800"}', "user"),
    ("/v1/rerank", '{"query": "q", "documents": ["\\ud800"]}', "documents[0] contains a lone UTF-16 surrogate"),
    ("/v1/rerank", '{"query": "q", "documents": [{"text": "\\ud800"}]}', "documents[0] contains a lone"),
    ("/v1/rerank", '{"query": "q", "documents": ["a"], "model": "\\udbff"}', "model"),
]


@pytest.mark.parametrize(("path", "body", "needle"), SURROGATES)
def test_lone_surrogates_are_422_naming_the_field(http, path: str, body: str, needle: str) -> None:
    res = http.post(path, content=body.encode(), headers=JSON)
    assert res.status_code == 422, res.text
    message, kind = reason(res)
    assert kind == "validation" and needle in message, res.text


def test_surrogate_sent_as_utf8_bytes_is_422(http) -> None:
    """CESU-style bytes (ED A0 80) decode to the same lone surrogate: refused the same way."""
    res = http.post("/embed", content=b'{"inputs": "a\xed\xa0\x80b"}', headers=JSON)
    assert res.status_code == 422 and "inputs[0] contains a lone UTF-16 surrogate" in res.json()["error"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/embed", '{"inputs": ["a\\u0000b", "\\u0000 x"]}'),
        ("/rerank", '{"query": "q\\u0000", "texts": ["\\u0000a"], "return_text": true}'),
        ("/v1/embeddings", '{"input": "\\u0000x", "model": "m\\u0000"}'),
        ("/v1/rerank", '{"query": "\\u0000q", "documents": [{"text": "a\\u0000"}], "return_documents": true}'),
    ],
)
def test_nul_and_controls_are_text(http, path: str, body: str) -> None:
    """NUL is a valid JSON string character: embedded like TEI does (the normaliser drops it), returned texts intact."""
    res = http.post(path, content=body.encode(), headers=JSON)
    assert res.status_code == 200, res.text
    if "return" in body:
        assert "\\u0000" in res.text
    if '"model"' in body:  # accepted with one embedder served; the answer names the model that made the vectors
        assert res.json()["model"] == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"inputs": "a\xffb"}', "not valid UTF-8: byte 0xff at offset 13"),
        (b'{"inputs": "a\x00b"}', "not valid JSON at character 13: Invalid control character"),
        (b'{"inputs": "x", "truncate": tru}', "not valid JSON at character"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"inputs": "x", "normalize": ' + b"9" * 5000 + b"}", "4300"),
    ],
    ids=["invalid-utf8", "raw-nul", "bad-literal", "deep-nesting", "5000-digits"],
)
def test_unparsable_bodies_are_400_with_the_reason(http, content: bytes, needle: str) -> None:
    res = http.post("/embed", content=content, headers=JSON)
    assert res.status_code == 400, res.text
    assert needle in res.json()["error"], res.text


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/rerank", f'{{"query": "q", "texts": ["a"], "top_n": {BIG_DIGITS}}}', "less than or equal to 100000"),
        ("/rerank", '{"query": "q", "texts": ["a"], "top_n": 1e999999}', "finite number"),
        ("/rerank", '{"query": "q", "texts": ["a"], "top_n": -1e999999}', "finite number"),
        ("/rerank", '{"query": "q", "texts": ["a"], "top_n": 1.5}', "top_n"),
        ("/rerank", '{"query": "q", "texts": ["a"], "top_n": NaN}', "finite number"),
        ("/v1/rerank", '{"query": "q", "documents": ["a"], "top_n": 100001}', "less than or equal to 100000"),
        ("/v1/rerank", f'{{"query": "q", "documents": ["a"], "top_n": -{BIG_DIGITS}}}', "greater than or equal"),
        ("/v1/embeddings", '{"input": "x", "dimensions": 65537}', "less than or equal to 65536"),
        ("/v1/embeddings", '{"input": "x", "dimensions": 1000}', "exceeds the model's 384"),
        ("/v1/embeddings", f'{{"input": "x", "dimensions": {BIG_DIGITS}}}', "less than or equal to 65536"),
        ("/v1/embeddings", '{"input": "x", "dimensions": 0}', "greater than or equal to 1"),
        ("/embed", '{"inputs": "x", "normalize": 1e999999}', "normalize"),
        ("/embed", f'{{"inputs": [{BIG_DIGITS}]}}', "is not a token id (0..4294967295)"),
    ],
)
def test_out_of_range_numbers_are_422(http, path: str, body: str, needle: str) -> None:
    res = http.post(path, content=body.encode(), headers=JSON)
    assert res.status_code == 422, res.text
    assert needle in reason(res)[0], res.text


def test_bounds_are_inclusive_and_in_openapi(http) -> None:
    res = http.post("/rerank", json={"query": "q", "texts": ["a", "b"], "top_n": 100_000})
    assert res.status_code == 200 and len(res.json()) == 2
    schemas = http.get("/openapi.json").json()["components"]["schemas"]

    def bounds(model: str, field: str) -> tuple[int, int]:
        spec = next(s for s in schemas[model]["properties"][field]["anyOf"] if s.get("type") == "integer")
        return spec["minimum"], spec["maximum"]

    assert bounds("RerankRequest", "top_n") == (1, 100_000)
    assert bounds("CohereRerankRequest", "top_n") == (1, 100_000)
    assert bounds("OpenAIEmbeddingRequest", "dimensions") == (1, 65_536)


@pytest.mark.parametrize("path", ["/embed", "/rerank", "/v1/embeddings", "/v1/rerank"])
def test_missing_content_type_is_415(http, path: str) -> None:
    """As the README says: not application/json, with or without a valid JSON body, is 415 (never 422)."""
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}):
        res = http.post(path, content=b'{"inputs": "x", "input": "x", "query": "q", "texts": ["a"]}', headers=headers)
        assert res.status_code == 415, (headers, res.text)
        assert "application/json" in reason(res)[0]
    assert http.post(path, headers={}).status_code == 415  # no body, no type
    ok = http.post(
        path,
        content=b'{"inputs": "x", "input": "x", "query": "q", "texts": ["a"], "documents": ["a"]}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200, ok.text


def test_key_is_checked_before_content_type(strict_server) -> None:
    with strict_server.client() as c:
        assert c.post("/embed", content=b'{"inputs": "x"}').status_code == 401
        assert c.post("/embed", content=b'{"inputs": "x"}', headers=AUTH).status_code == 415


def test_docs_load_offline(strict_server) -> None:
    """/docs and every asset it references come from the service itself, without the API key; no CDN."""
    with strict_server.client() as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert not re.search(r"(src|href)=\"https?://", page.text), "the page must not load anything remote"
        assets = re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text)
        assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets), assets
        for asset in [*assets, "/openapi.json", "/redoc"]:
            res = c.get(asset)
            assert res.status_code == 200 and len(res.content) > 100, asset
        bundle = c.get(next(a for a in assets if a.endswith("swagger-ui-bundle.js")))
        assert "SwaggerUIBundle" in bundle.text


def test_8mb_text_costs_about_a_max_length_text(http) -> None:
    """Truncation reads only the prefix it needs: 8 MB tokenises in milliseconds (9.3 s before, full pass)."""
    big = ("tokenisation cost grows with the text " * 250_000)[:8_000_000]
    for path, body in (
        ("/embed", {"inputs": big}),
        ("/embed", {"inputs": big, "truncation_direction": "left"}),
        ("/rerank", {"query": "cost", "texts": [big]}),
        ("/rerank", {"query": big, "texts": ["cost"]}),
    ):
        res = http.post(path, json=body, timeout=120)
        assert res.status_code == 200, res.text
        assert float(res.headers["x-tokenization-time"]) < 500, (path, res.headers["x-tokenization-time"])
        assert float(res.headers["x-compute-tokens"]) <= 512
