"""OpenAI /v1/embeddings through the official client, and Cohere/Jina /v1/rerank."""

from __future__ import annotations

import numpy as np
import openai
import pytest


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_openai_client_default_base64(client, http) -> None:
    texts = ["first text", "second, longer text about proteins"]
    res = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)  # the client asks for base64
    assert [d.index for d in res.data] == [0, 1]
    ours = np.asarray([d.embedding for d in res.data])
    tei = np.asarray(http.post("/embed", json={"inputs": texts}).json())
    assert np.allclose(ours, tei, atol=1e-6)
    assert res.model == "all-MiniLM-L6-v2"
    assert res.usage.prompt_tokens == res.usage.total_tokens > 0


def test_openai_float_and_dimensions(client) -> None:
    res = client.embeddings.create(model="m", input="one text", encoding_format="float", dimensions=128)
    vec = np.asarray(res.data[0].embedding)
    assert vec.shape == (128,)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    full = np.asarray(client.embeddings.create(model="m", input="one text", encoding_format="float").data[0].embedding)
    assert np.allclose(vec, full[:128] / np.linalg.norm(full[:128]), atol=1e-6)


def test_openai_errors_surface_in_client(client) -> None:
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="m", input="x", dimensions=385)
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="m", input=[])


def test_cohere_rerank_shape(http) -> None:
    body = {
        "query": "what is panda?",
        "model": "rr",
        "documents": ["Paris is the capital of France.", {"text": "The giant panda is a bear species."}],
        "return_documents": True,
        "top_n": 2,
    }
    res = http.post("/v1/rerank", json=body)
    assert res.status_code == 200, res.text
    data = res.json()
    assert data["model"] == "rr" and data["usage"]["total_tokens"] > 0
    assert [r["index"] for r in data["results"]] == [1, 0]
    assert data["results"][0]["document"] == {"text": "The giant panda is a bear species."}
    assert 0 < data["results"][1]["relevance_score"] < data["results"][0]["relevance_score"] < 1
    plain = http.post("/v1/rerank", json={"query": "q", "documents": ["a", "b", "c"], "top_n": 1}).json()
    assert len(plain["results"]) == 1 and "document" not in plain["results"][0]
