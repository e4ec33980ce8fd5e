"""TEI's routes beyond /embed and /rerank: POST /, /tokenize, /decode, /embed_all and /info's TEI fields."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

TEXTS = ["Hello world!", "Proteins fold into shapes that decide what they do."]


def test_root_route_embeds_or_reranks_by_body(http: httpx.Client) -> None:
    embedded = http.post("/", json={"inputs": TEXTS})
    assert embedded.status_code == 200, embedded.text
    assert np.allclose(embedded.json(), http.post("/embed", json={"inputs": TEXTS}).json(), atol=1e-6)
    body = {"query": "what do proteins do?", "texts": TEXTS, "return_text": True}
    ranked = http.post("/", json=body)
    assert ranked.status_code == 200, ranked.text
    assert ranked.json() == http.post("/rerank", json=body).json()
    neither = http.post("/", json={"text": "x"})
    assert neither.status_code == 422 and "inputs" in neither.json()["error"]


def test_tokenize_offsets_and_special_tokens(http: httpx.Client) -> None:
    res = http.post("/tokenize", json={"inputs": TEXTS})
    assert res.status_code == 200, res.text
    first, second = res.json()
    assert first[0] == {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
    assert first[-1]["special"] and not any(t["special"] for t in first[1:-1])
    for token in first[1:-1]:  # each token's text is the input's characters at its offsets
        assert TEXTS[0][token["start"] : token["stop"]] == token["text"]
    assert [t["text"] for t in first[1:-1]] == ["Hello", "world", "!"]
    plain = http.post("/tokenize", json={"inputs": TEXTS[1], "add_special_tokens": False}).json()
    assert [t["id"] for t in plain[0]] == [t["id"] for t in second[1:-1]]


def test_tokenize_then_decode_round_trips(http: httpx.Client) -> None:
    tokens = http.post("/tokenize", json={"inputs": TEXTS}).json()
    ids = [[t["id"] for t in row] for row in tokens]
    decoded = http.post("/decode", json={"ids": ids}).json()
    assert decoded == [t.lower() for t in ("hello world!", TEXTS[1])]  # the model's tokenizer lowercases
    kept = http.post("/decode", json={"ids": ids[0], "skip_special_tokens": False}).json()
    assert kept == ["[CLS] hello world! [SEP]"]


def test_embed_all_mean_pools_to_embed(http: httpx.Client) -> None:
    res = http.post("/embed_all", json={"inputs": TEXTS})
    assert res.status_code == 200, res.text
    per_token = [np.asarray(m) for m in res.json()]
    lengths = [len(r) for r in http.post("/tokenize", json={"inputs": TEXTS}).json()]
    assert [m.shape for m in per_token] == [(n, 384) for n in lengths]
    pooled = np.asarray(http.post("/embed", json={"inputs": TEXTS, "normalize": False}).json())
    assert np.allclose(np.vstack([m.mean(axis=0) for m in per_token]), pooled, atol=1e-4)  # the model pools by mean


def test_embed_takes_token_ids_and_dimensions(http: httpx.Client) -> None:
    ids = [[t["id"] for t in row] for row in http.post("/tokenize", json={"inputs": TEXTS}).json()]
    by_text = np.asarray(http.post("/embed", json={"inputs": TEXTS}).json())
    by_ids = np.asarray(http.post("/embed", json={"inputs": ids}).json())
    assert np.allclose(by_ids, by_text, atol=1e-5)
    cut = np.asarray(http.post("/embed", json={"inputs": TEXTS, "dimensions": 64}).json())
    assert cut.shape == (2, 64) and np.allclose(np.linalg.norm(cut, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/embed", {"inputs": [[101, True]]}, "inputs[0][1] is not a token id"),
        ("/embed", {"inputs": ["text", [101]]}, "not a mix"),
        ("/embed", {"inputs": [[]]}, "inputs[0] is an empty list of token ids"),
        ("/embed", {"inputs": "x", "prompt_name": "query"}, "defines no prompts"),
        ("/embed_all", {"inputs": [[101, -1]]}, "-1 is not a token id"),
        ("/decode", {"ids": [[1], []]}, "ids"),
        ("/tokenize", {"inputs": ["ok", " "]}, "inputs[1] is empty"),
    ],
)
def test_malformed_inputs_get_a_reason(http: httpx.Client, path: str, body: dict, needle: str) -> None:
    res = http.post(path, json=body)
    assert res.status_code == 422, res.text
    assert res.json()["error_type"] == "validation" and needle in res.json()["error"]


def test_info_carries_tei_fields_beside_ours(http: httpx.Client) -> None:
    info = http.get("/info").json()
    assert info["model_id"] == info["embedding"]["model"]
    assert info["model_type"] == {"embedding": {"pooling": info["embedding"]["pooling"]}}
    assert info["max_input_length"] == info["embedding"]["max_length"]
    assert info["max_client_batch_size"] == info["batching"]["max_client_batch_size"]
    assert info["max_batch_tokens"] == info["batching"]["max_batch_tokens"]
    assert info["max_concurrent_requests"] == info["batching"]["max_concurrent_requests"]
    assert info["auto_truncate"] is True and isinstance(info["tokenization_workers"], int)


def test_every_post_route_is_a_json_route(http: httpx.Client) -> None:
    """The guard refuses non-JSON bodies per route: a new POST route must be on its list."""
    from ml_api.api.middleware import JSON_ROUTES

    spec = http.get("/openapi.json").json()
    posts = {path for path, ops in spec["paths"].items() if "post" in ops}
    assert posts == JSON_ROUTES
    for path in posts:
        res = http.post(path, content=b"inputs=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert res.status_code == 415, path


def test_embed_all_refuses_an_answer_too_large_to_send(http: httpx.Client) -> None:
    res = http.post("/embed_all", json={"inputs": ["word " * 300] * 60})  # 60 x 256 tokens x 384 floats
    assert res.status_code == 413, res.text
    assert "send fewer or shorter inputs" in res.json()["error"]
