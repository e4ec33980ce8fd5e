"""Bad input gets a clear 4xx in the one error shape, never a 500, and the server keeps serving."""

from __future__ import annotations

import pytest
from conftest import reason

JSON = {"Content-Type": "application/json"}

CASES = [
    ("/embed", {"inputs": ""}, 422, "empty"),
    ("/embed", {"inputs": ["ok", "   "]}, 422, "inputs[1] is empty"),
    ("/embed", {"inputs": []}, 422, "must not be empty"),
    ("/embed", {"inputs": [1.5, 2]}, 422, "inputs[0] is not a token id"),
    ("/embed", {"inputs": None}, 422, "inputs"),
    ("/embed", {"inputs": [["nested"]]}, 422, "inputs[0][0] is not a token id"),
    ("/embed", {}, 422, "Field required"),
    ("/embed", {"inputs": "x", "truncation_direction": "middle"}, 422, "truncation_direction"),
    ("/embed", {"inputs": ["x"] * 10_000}, 413, "MAX_CLIENT_BATCH_SIZE"),
    ("/rerank", {"query": "q"}, 422, "texts"),
    ("/rerank", {"query": "", "texts": ["a"]}, 422, "query"),
    ("/rerank", {"query": "q", "texts": []}, 422, "must not be empty"),
    ("/rerank", {"query": "q", "texts": ["a"], "top_n": 0}, 422, "top_n"),
    ("/rerank", {"query": "q", "texts": [{"text": "a"}]}, 422, "valid string"),
    ("/v1/embeddings", {"model": "m"}, 422, "input"),
    ("/v1/embeddings", {"input": "x", "encoding_format": "int8"}, 422, "encoding_format"),
    ("/v1/rerank", {"query": "q", "documents": [{"txt": "a"}]}, 422, "documents"),
    ("/v1/rerank", {"query": "q", "documents": [""]}, 422, "empty"),
]


@pytest.mark.parametrize(("path", "body", "status", "needle"), CASES)
def test_bad_json_bodies(http, path, body, status, needle) -> None:
    res = http.post(path, json=body)
    assert res.status_code == status, res.text
    message, kind = reason(res)
    assert kind == "validation"
    assert needle in message


@pytest.mark.parametrize(
    ("content", "headers", "status", "needle"),
    [
        (b'{"inputs": "\xff\xfe broken"}', JSON, 400, "UTF-8"),
        (b'{"inputs": ', JSON, 400, "not valid JSON"),
        (b"inputs=hello", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "application/json"),
        (b"", JSON, 422, "Field required"),
    ],
)
def test_bad_raw_bodies(http, content, headers, status, needle) -> None:
    res = http.post("/embed", content=content, headers=headers)
    assert res.status_code == status, res.text
    assert needle in res.json()["error"]


def test_huge_text_is_truncated_not_refused(http) -> None:
    res = http.post("/embed", json={"inputs": "word " * 400_000})  # 2 MB in one string
    assert res.status_code == 200
    assert len(res.json()[0]) == 384


def test_unknown_route_and_method(http) -> None:
    assert http.post("/nope", json={}).status_code == 404
    res = http.get("/embed")
    assert res.status_code == 405 and res.json()["error_type"] == "validation"


def test_server_still_healthy_after_bad_input(http) -> None:
    assert http.get("/health").status_code == 200
