"""A query's collections: several searched together, every readable one by default, and nothing of a collection the
caller cannot read in results, citations, the LLM's prompt, stream events, cache hits or errors.

Against the real ml-api, real Redis and both store engines (the embedded one, and the server store through
devharness's Qdrant stand-in), in-process so a test can play callers with different rights: it overrides the app's
`readable_collections` dependency (what access control supplies; the auth branch implements the real one) with one
that reads the caller from a header. The LLM is the fake Ollama of fake_llm.py over real HTTP, which records every
prompt it was sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import TOKENIZER, Proc, sse
from devharness.qdrant_standin import start_standin
from fake_llm import FakeLLM
from fastapi import Request

from rag_backend.api.app import create_app
from rag_backend.api.deps import readable_collections
from rag_backend.core.config import Settings

pytestmark = pytest.mark.anyio

SECRET = "The vault under the violet orchid greenhouse opens with the code TANGERINE-4471."
DOCS = {
    "alpha": {
        "garden.md": "The alpha garden grows tomatoes, basil and a violet orchid in its greenhouse.",
        "tools.md": "Garden tools are kept in the shed next to the compost heap.",
    },
    "bravo": {"vault.md": SECRET, "ledger.md": "The bravo ledger lists the payroll of every department."},
}
VAULT_QUESTION = "violet orchid greenhouse vault code"
CALLERS: dict[str, frozenset[str] | None] = {
    "admin": None,  # no restriction
    "reader": frozenset({"alpha"}),  # bravo exists, but this caller may not read it
    "nobody": frozenset(),
}


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    service = start_standin(tmp_path_factory.mktemp("qdrant-standin") / "standin.log")
    yield service.url
    service.stop(10)


@pytest.fixture(params=["edge", "qdrant"])
def qdrant_url(request: pytest.FixtureRequest) -> str | None:
    """None: the embedded engine; else the stand-in's URL, emptied first (spaces are shared by model)."""
    if request.param == "edge":
        return None
    url: str = request.getfixturevalue("standin")
    with httpx.Client(base_url=url, timeout=10) as c:
        for coll in c.get("/collections").raise_for_status().json()["result"]["collections"]:
            c.delete(f"/collections/{coll['name']}").raise_for_status()
    return url


async def as_caller(request: Request) -> frozenset[str] | None:
    """Stands in for access control: the caller named by the test's header."""
    return CALLERS[request.headers.get("x-test-caller", "admin")]


@asynccontextmanager
async def backend(
    tmp_path: Path, ml_api: Proc, redis_url: str, prefix: str, fake: FakeLLM, qdrant_url: str | None
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        embed_api_url=ml_api.url,
        rerank_api_url=ml_api.url,
        chunk_tokenizer=str(TOKENIZER),
        redis_url=redis_url,
        cache_prefix=prefix,
        qdrant_url=qdrant_url,
        llm_providers=["ollama"],
        ollama_url=fake.url,
        llm_timeout_s=10.0,
    )
    app = create_app(settings)
    app.dependency_overrides[readable_collections] = as_caller
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend", timeout=120) as client:
            for collection, files in DOCS.items():
                sent = [("files", (name, text.encode(), "text/markdown")) for name, text in files.items()]
                r = await client.post("/api/documents", files=sent, data={"collection": collection})
                assert r.status_code == 202, r.text
                for doc in r.json()["documents"]:
                    assert (await wait_ready(client, doc["id"]))["status"] == "ready"
            yield client


async def wait_ready(client: httpx.AsyncClient, doc_id: str) -> dict:
    with anyio.fail_after(120):
        while True:
            doc = (await client.get(f"/api/documents/{doc_id}")).json()
            if doc["status"] in ("ready", "failed"):
                return doc
            await anyio.sleep(0.05)


async def ask(client: httpx.AsyncClient, caller: str, **body: object) -> httpx.Response:
    return await client.post("/api/query", json=body, headers={"x-test-caller": caller})


async def stream(client: httpx.AsyncClient, caller: str, **body: object) -> list[tuple[str, dict]]:
    async with client.stream("POST", "/api/query/stream", json=body, headers={"x-test-caller": caller}) as r:
        assert r.status_code == 200, await r.aread()
        return list(sse(iter([line async for line in r.aiter_lines()])))


def documents_of(client_docs: list[dict]) -> dict[str, str]:
    return {d["id"]: d["collection"] for d in client_docs}


async def test_collections_are_searched_together_and_each_result_names_its_own(
    tmp_path: Path, ml_api: Proc, redis_url: str, prefix: str, fake: FakeLLM, qdrant_url: str | None
) -> None:
    async with backend(tmp_path, ml_api, redis_url, prefix, fake, qdrant_url) as c:
        owner = documents_of((await c.get("/api/documents", params={"limit": 100})).json()["documents"])
        both = await ask(c, "admin", query="orchid garden ledger payroll", collections=["alpha", "bravo"], top_k=10)
        assert both.status_code == 200, both.text
        results = both.json()["results"]
        assert {r["collection"] for r in results} == {"alpha", "bravo"}  # one ranking over both collections
        assert all(owner[r["document_id"]] == r["collection"] for r in results)
        assert len({r["id"] for r in results}) == len(results) == 4
        # Omitted: every collection the caller can read (here both), the same targets, so the same cache entry.
        omitted = await ask(c, "admin", query="orchid garden ledger payroll", top_k=10)
        assert omitted.json()["cached"] is True and omitted.json()["results"] == results
        # The older one-name form, and names given twice.
        one = await ask(c, "admin", query="orchid garden ledger payroll", collection="alpha", top_k=10)
        assert one.status_code == 200 and {r["collection"] for r in one.json()["results"]} == {"alpha"}
        twice = await ask(c, "admin", query="orchid garden ledger payroll", collections=["alpha", "alpha"], top_k=10)
        assert twice.json()["results"] == one.json()["results"]

        r = await ask(c, "admin", query="orchid", collection="alpha", collections=["alpha"])
        assert r.status_code == 422 and r.json()["error_type"] == "validation", r.text
        assert "not both" in r.json()["error"] and "collections" in r.json()["error"]
        r = await ask(c, "admin", query="orchid", collections=[])
        assert r.status_code == 422 and "collections" in r.json()["error"], r.text
        r = await ask(c, "admin", query="orchid", collections=["alpha", "no spaces"])
        assert r.status_code == 422 and "collections.1" in r.json()["error"], r.text
        r = await ask(c, "admin", query="orchid", collections=["alpha", "no-such"])
        assert r.status_code == 404 and r.json() == {
            "error": "collection 'no-such' does not exist", "error_type": "not_found"
        }  # fmt: skip


async def test_a_collection_the_caller_cannot_read_never_leaks(
    tmp_path: Path, ml_api: Proc, redis_url: str, prefix: str, fake: FakeLLM, qdrant_url: str | None
) -> None:
    fake.reset(tokens=["The greenhouse ", "holds an orchid [1]."])
    async with backend(tmp_path, ml_api, redis_url, prefix, fake, qdrant_url) as c:
        # The hidden sentence is what this question finds for a caller who may read everything: a leak would show.
        admin = await ask(c, "admin", query=VAULT_QUESTION, generate=True)
        assert admin.status_code == 200 and admin.json()["results"][0]["text"] == SECRET, admin.text
        assert not admin.json()["cached"] and not admin.json()["llm"]["cached"]
        assert SECRET in json.dumps(fake.requests[-1]["messages"])
        again = await ask(c, "admin", query=VAULT_QUESTION, generate=True)
        assert again.json()["cached"] and again.json()["llm"]["cached"]  # both caches hold the admin's answer

        # The same question by a caller who cannot read bravo: no cache entry of the admin's is served, and
        # nothing of bravo reaches the results, the citations, the answer or the LLM's prompt.
        fake.requests.clear()
        reader = await ask(c, "reader", query=VAULT_QUESTION, generate=True)
        assert reader.status_code == 200, reader.text
        body = reader.json()
        assert not body["cached"] and not body["llm"]["cached"] and len(fake.requests) == 1
        assert body["results"] and {r["collection"] for r in body["results"]} == {"alpha"}
        assert {x["collection"] for x in body["citations"]} <= {"alpha"} and body["citations"]
        assert "TANGERINE" not in reader.text and "TANGERINE" not in json.dumps(fake.requests)
        assert "bravo" not in reader.text and "ledger" not in reader.text
        events = await stream(c, "reader", query=VAULT_QUESTION + " now", generate=True)
        assert events[0][0] == "results" and events[-1][0] == "done"
        assert {r["collection"] for r in events[0][1]["results"]} == {"alpha"}
        assert "TANGERINE" not in json.dumps(events) and "bravo" not in json.dumps(events)

        # The collection set is in the store query, not a filter of its top-k: the global best hit is bravo's,
        # and top_k=1 still brings alpha's best, with each retrieval alone and together.
        for stages in (
            {"dense": True, "sparse": True},
            {"dense": True, "sparse": False},
            {"sparse": True, "dense": False},
        ):
            r = await ask(c, "admin", query=VAULT_QUESTION, top_k=1, rerank=False, **stages)
            assert r.json()["results"][0]["text"] == SECRET, (stages, r.text)
            r = await ask(c, "reader", query=VAULT_QUESTION, top_k=1, rerank=False, **stages)
            assert [x["source"] for x in r.json()["results"]] == ["garden.md"], (stages, r.text)

        # Naming bravo is the same 404 as naming a collection that does not exist, on both routes and both forms.
        missing = {"error": "collection 'nowhere' does not exist", "error_type": "not_found"}
        hidden = {"error": "collection 'bravo' does not exist", "error_type": "not_found"}
        forms = (lambda n: {"collections": [n]}, lambda n: {"collections": ["alpha", n]}, lambda n: {"collection": n})
        for form in forms:
            for name, expected in (("nowhere", missing), ("bravo", hidden)):
                query = form(name)
                for route in ("/api/query", "/api/query/stream"):
                    r = await c.post(route, json={"query": "vault", **query}, headers={"x-test-caller": "reader"})
                    assert (r.status_code, r.json()) == (404, expected), (route, query, r.text)
        r = await ask(c, "admin", query="vault", collections=["bravo"])  # readable to the admin: found
        assert r.status_code == 200 and r.json()["results"][0]["collection"] == "bravo"

        # A caller who can read nothing: an empty answer that counts nothing and names nothing.
        r = await ask(c, "nobody", query=VAULT_QUESTION, generate=True)
        assert r.status_code == 200 and r.json()["results"] == [] and r.json()["citations"] == [], r.text
        assert r.json()["answer"] == "No passage in the searched collections matches the question."
        assert "alpha" not in r.text and "bravo" not in r.text


async def test_answer_and_retrieval_caches_are_keyed_by_the_searched_collections(
    tmp_path: Path, ml_api: Proc, redis_url: str, prefix: str, fake: FakeLLM, qdrant_url: str | None
) -> None:
    """Even where two callers' passages are the same (alpha's best is the overall best), an entry made over
    {alpha, bravo} is never served to a query over {alpha}: the keys hold the searched set."""
    fake.reset(tokens=["Tomatoes and basil [1]."])
    async with backend(tmp_path, ml_api, redis_url, prefix, fake, qdrant_url) as c:
        question = {"query": "which garden grows tomatoes and basil?", "top_k": 1, "rerank": False, "generate": True}
        admin = (await ask(c, "admin", **question)).json()
        assert [r["collection"] for r in admin["results"]] == ["alpha"] and not admin["llm"]["cached"]
        reader = (await ask(c, "reader", **question)).json()
        assert reader["results"] == admin["results"]  # the same passage...
        assert not reader["cached"] and not reader["llm"]["cached"] and len(fake.requests) == 2  # ...not the entry
        assert (await ask(c, "reader", **question)).json()["llm"]["cached"]  # its own entry, from now on
        named = (await ask(c, "admin", **question, collections=["alpha"])).json()
        assert named["cached"] and named["llm"]["cached"]  # the admin naming alpha searches what the reader did
