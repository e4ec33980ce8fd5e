"""The official clients users already run, unchanged, against the running service (real models).

Each client's vectors are compared with TEI's /embed (cosine >= 0.9999) and its ranks with /rerank. The Cohere
clients (v1 and v2) are in test_cohere.py; curl's shapes are in the README and exercised across the suite.
"""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest
from huggingface_hub import InferenceClient
from langchain_openai import OpenAIEmbeddings

TEXTS = ["first text", "second, longer text about proteins and how they fold"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def tei(http: httpx.Client) -> np.ndarray:
    return np.asarray(http.post("/embed", json={"inputs": TEXTS}).json())


# -- openai ---------------------------------------------------------------------------------------------------
def test_openai_client_default_base64(client: openai.OpenAI, tei: np.ndarray) -> None:
    res = client.embeddings.create(model="text-embedding-3-large", input=TEXTS)  # the client asks for base64
    assert [d.index for d in res.data] == [0, 1]
    assert cosines(np.asarray([d.embedding for d in res.data]), tei).min() >= 0.9999
    # One embedder served: any name is accepted, and the answer names the model that made the vectors.
    assert res.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert res.usage.prompt_tokens == res.usage.total_tokens > 0


def test_openai_float_and_dimensions(client: openai.OpenAI) -> None:
    res = client.embeddings.create(model="m", input="one text", encoding_format="float", dimensions=128)
    vec = np.asarray(res.data[0].embedding)
    assert vec.shape == (128,)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    full = np.asarray(client.embeddings.create(model="m", input="one text", encoding_format="float").data[0].embedding)
    assert np.allclose(vec, full[:128] / np.linalg.norm(full[:128]), atol=1e-6)


def test_openai_token_ids_embed_like_the_text(client: openai.OpenAI, http: httpx.Client, tei: np.ndarray) -> None:
    tokens = http.post("/tokenize", json={"inputs": TEXTS}).json()
    ids = [[t["id"] for t in row] for row in tokens]
    batch = client.embeddings.create(model="m", input=ids, encoding_format="float")
    assert cosines(np.asarray([d.embedding for d in batch.data]), tei).min() >= 0.9999
    assert batch.usage.prompt_tokens == sum(len(row) for row in ids)
    one = client.embeddings.create(model="m", input=ids[0])  # a single list of ids is one input
    assert len(one.data) == 1 and cosines(np.asarray(one.data[0].embedding), tei[0])[0] >= 0.9999


def test_openai_over_length_token_ids_follow_truncate(client: openai.OpenAI, http: httpx.Client) -> None:
    limit = http.get("/info").json()["max_input_length"]
    ids = [101] + [7592] * (limit + 50) + [102]
    cut = client.embeddings.create(model="m", input=[ids], encoding_format="float").data[0].embedding
    first = client.embeddings.create(model="m", input=[ids[:limit]], encoding_format="float").data[0].embedding
    assert cosines(np.asarray(cut), np.asarray(first))[0] >= 0.9999
    with pytest.raises(openai.APIStatusError) as refused:
        client.embeddings.create(model="m", input=[ids], extra_body={"truncate": False})
    assert refused.value.status_code == 413 and f"more than the model's {limit}" in refused.value.message


def test_openai_models_list_and_retrieve(client: openai.OpenAI, http: httpx.Client) -> None:
    info = http.get("/info").json()
    ids = [m.id for m in client.models.list()]
    assert ids == [info["embedding"]["model"], info["reranking"]["model"]]
    assert client.models.retrieve(ids[0]).id == ids[0]  # an id with a slash (org/name) works too
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4o")
    assert "not served here" in missing.value.message


def test_openai_errors_carry_a_message_the_client_reads(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as too_wide:
        client.embeddings.create(model="m", input="x", dimensions=385)
    assert "exceeds the model's 384" in too_wide.value.message
    assert too_wide.value.body["type"] == "invalid_request_error" and too_wide.value.code == "validation"
    with pytest.raises(openai.UnprocessableEntityError) as empty:
        client.embeddings.create(model="m", input=[])
    assert "must not be empty" in empty.value.message
    with pytest.raises(openai.UnprocessableEntityError) as outside:
        client.embeddings.create(model="m", input=[[101, 10**6]])
    assert "outside the vocabulary" in outside.value.message


def test_openai_auth_error_in_openai_shape(strict_server) -> None:
    anonymous = openai.OpenAI(base_url=strict_server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        anonymous.embeddings.create(model="m", input="x")
    assert denied.value.code == "invalid_api_key" and "API key" in denied.value.message
    keyed = openai.OpenAI(base_url=strict_server.url + "/v1", api_key="s3cret", max_retries=0)
    assert len(keyed.embeddings.create(model="m", input="x").data) == 1


# -- LangChain ------------------------------------------------------------------------------------------------
def test_langchain_openai_embeddings(server, tei: np.ndarray) -> None:
    embeddings = OpenAIEmbeddings(
        model="all-MiniLM-L6-v2",
        base_url=server.url + "/v1",
        api_key="unused",
        check_embedding_ctx_length=False,  # otherwise it tokenises with tiktoken (a download) for OpenAI's models
        max_retries=0,
    )
    documents = np.asarray(embeddings.embed_documents(TEXTS))
    assert cosines(documents, tei).min() >= 0.9999
    assert cosines(np.asarray(embeddings.embed_query(TEXTS[1])), tei[1])[0] >= 0.9999


# -- huggingface_hub (TEI's client) ------------------------------------------------------------------------
def test_huggingface_hub_feature_extraction(server, tei: np.ndarray) -> None:
    hf = InferenceClient(base_url=server.url)  # posts to TEI's root route, POST /
    one = hf.feature_extraction(TEXTS[0])
    assert one.shape == (1, 384) and one.dtype == np.float32
    assert cosines(one, tei[0])[0] >= 0.9999
    left = hf.feature_extraction(" ".join(["word"] * 400) + " protein", truncate=True, truncation_direction="left")
    right = hf.feature_extraction(" ".join(["word"] * 400) + " protein", truncate=True, truncation_direction="right")
    assert cosines(left, right)[0] < 0.9999  # the direction reached the server
    raw = hf.feature_extraction(TEXTS[1], normalize=False)
    assert np.linalg.norm(raw) != pytest.approx(1.0, abs=1e-3) and cosines(raw, tei[1])[0] >= 0.9999


def test_huggingface_hub_errors_surface(server) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    hf = InferenceClient(base_url=server.url)
    with pytest.raises(HfHubHTTPError) as refused:
        hf.feature_extraction("word " * 600, truncate=False)
    assert refused.value.response.status_code == 413
    assert "the model's 256" in refused.value.response.json()["error"]
