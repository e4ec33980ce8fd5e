"""LLM answers against a real OpenAI-compatible server: llama.cpp serving SmolLM2-135M-Instruct (llama_server.py).

The fakes of test_answers.py cover what a real server will not do on demand (5xx, a slow first token, breaker
timing); here the provider chain, fallback, a server killed mid-answer and the backend's routes run against real
streamed completions. A 135M model writes weak answers, so the tests assert mechanics, never prose.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import TOKENIZER, Proc, free_port, ingest_solar, sse, start_backend
from llama_server import MODEL_ALIAS, LlamaServer, find_model, llm_python, start_llama

from rag_backend.answers import Answerer, citations
from rag_backend.cache import LocalCache
from rag_backend.chunking import load_tokenizer
from rag_backend.core.config import Settings
from rag_backend.llm import make_chain

RESULTS = [
    {"id": "r1", "text": "Photovoltaic cells convert sunlight into electricity.", "document_id": "d1",
     "source": "solar.md", "position": 0, "page": None},
    {"id": "r2", "text": "Panels lose output when hot, so installers leave an air gap behind them.",
     "document_id": "d1", "source": "solar.md", "position": 1, "page": None},
]  # fmt: skip
DEAD = f"http://127.0.0.1:{free_port()}"
MAX_TOKENS = 32
QUESTION = "What do photovoltaic cells do?"
Events = list[tuple[str, dict]]


@pytest.fixture(scope="module")
def model() -> tuple[Path, Path]:
    python = llm_python()
    return python, find_model(python)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory, model: tuple[Path, Path]) -> Iterator[LlamaServer]:
    server = start_llama(tmp_path_factory.mktemp("llama") / "llama.log", *model)
    yield server
    server.stop()


def settings(llama_url: str, **kw: object) -> Settings:
    base: dict[str, object] = {
        "llm_providers": ["openai"], "openai_base_url": llama_url, "openai_model": MODEL_ALIAS, "ollama_url": DEAD,
        "llm_max_tokens": MAX_TOKENS, "llm_temperature": 0.0, "llm_timeout_s": 60.0, "llm_connect_timeout_s": 5.0,
    }  # fmt: skip
    return Settings(**(base | kw))  # type: ignore[arg-type]


def answerer(s: Settings, client: httpx.AsyncClient) -> Answerer:
    return Answerer(s, make_chain(s, client), LocalCache("llm-real:", 100), load_tokenizer(TOKENIZER))


async def run(s: Settings, question: str = QUESTION) -> Events:
    async with httpx.AsyncClient() as client:
        return [e async for e in answerer(s, client).stream(question, RESULTS)]


def tokens(events: Events) -> list[str]:
    return [d["text"] for k, d in events if k == "token"]


def done(events: Events) -> dict:
    assert events[-1][0] == "done", events
    return events[-1][1]


def test_server_reports_the_model(llama: LlamaServer) -> None:
    assert llama.models() == [MODEL_ALIAS]


@pytest.mark.anyio
async def test_answer_streams_from_the_real_server(llama: LlamaServer) -> None:
    events = await run(settings(llama.url))
    parts, d = tokens(events), done(events)
    assert d["provider"] == "openai", d  # on a fallback, `reason` says why the server did not answer
    assert [k for k, _ in events][-2:] == ["citations", "done"]
    assert 1 < len(parts) <= MAX_TOKENS, "one event per generated token, at most max_tokens of them"
    assert "".join(parts) == d["answer"] and d["answer"].strip()
    assert d["provider"] == "openai" and d["model"] == MODEL_ALIAS
    assert d["fallbacks"] == [] and d["cached"] is False and "truncated" not in d
    cites = events[-2][1]["citations"]
    assert cites == citations(d["answer"], RESULTS), "citations are exactly the answer's valid [n] markers"
    assert {c["result_id"] for c in cites} <= {r["id"] for r in RESULTS}


@pytest.mark.anyio
async def test_a_real_answer_is_cached_and_served_whole(llama: LlamaServer) -> None:
    s = settings(llama.url)
    async with httpx.AsyncClient() as client:
        a = answerer(s, client)
        first = [e async for e in a.stream("Why do panels lose output when hot?", RESULTS)]
        second = [e async for e in a.stream("Why do panels lose output when hot?", RESULTS)]
    assert done(first)["provider"] == "openai", done(first)
    assert done(first)["cached"] is False and done(second)["cached"] is True
    assert done(second)["answer"] == done(first)["answer"] and tokens(second) == [done(first)["answer"]]


@pytest.mark.anyio
async def test_dead_ollama_falls_back_to_the_real_server(llama: LlamaServer) -> None:
    events = await run(settings(llama.url, llm_providers=["ollama", "openai"]))
    d = done(events)
    assert d["provider"] == "openai" and d["model"] == MODEL_ALIAS and d["answer"].strip(), d
    assert [f["provider"] for f in d["fallbacks"]] == ["ollama"]
    error = d["fallbacks"][0]["error"]  # the cause, without the internal address a caller must not see
    assert "ConnectError" in error and DEAD not in error and "<url>" in error


@pytest.mark.anyio
async def test_server_killed_mid_answer_ends_it_truncated(tmp_path: Path, model: tuple[Path, Path]) -> None:
    server = start_llama(tmp_path / "llama-kill.log", *model)
    s = settings(server.url, llm_max_tokens=400, llm_breaker_failures=2)
    question = "Count from 1 to 200, writing every number out in words."
    try:
        async with httpx.AsyncClient() as client:
            a = answerer(s, client)
            events: Events = []
            killed_at = 0.0
            async for event in a.stream(question, RESULTS):
                events.append(event)
                if event[0] == "token" and not killed_at:
                    server.kill()
                    killed_at = time.perf_counter()
            ended_in = time.perf_counter() - killed_at
            d = done(events)
            assert d["provider"] == "openai" and d["truncated"], d
            assert "openai" in d["truncated"]
            assert "".join(tokens(events)) == d["answer"] and d["answer"]
            assert ended_in < 5, f"the answer ended {ended_in:.1f}s after the server died"
            breaker = a.chain.breakers["openai"]
            assert breaker.failures == 1 and breaker.state == "closed"

            after = [e async for e in a.stream(question, RESULTS)]  # the server is gone: refused at once
            assert done(after)["provider"] == "extractive" and "openai" in done(after)["reason"]
            assert breaker.failures == 2 and breaker.state == "open"
    finally:
        server.stop()


# -- through the backend ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llm_backend(tmp_path_factory: pytest.TempPathFactory, ml_api: Proc, llama: LlamaServer) -> Iterator[Proc]:
    backend = start_backend(
        tmp_path_factory.mktemp("llm-real"), ml_api.url, LLM_PROVIDERS="openai", OPENAI_BASE_URL=llama.url,
        OPENAI_MODEL=MODEL_ALIAS, LLM_MAX_TOKENS=str(MAX_TOKENS), LLM_TEMPERATURE="0", LLM_TIMEOUT_S="60",
        LLM_CONNECT_TIMEOUT_S="5",
    )  # fmt: skip
    ingest_solar(backend)
    yield backend
    backend.stop()


def test_query_generate_answers_from_the_real_server(llm_backend: Proc) -> None:
    with llm_backend.client() as c:
        body = c.post("/api/query", json={"query": f"What do solar cells do? {time.time()}", "generate": True}).json()
    assert isinstance(body["answer"], str) and body["answer"].strip()
    assert body["llm"]["provider"] == "openai", body["llm"]
    assert body["llm"]["provider"] == "openai" and body["llm"]["model"] == MODEL_ALIAS
    assert body["llm"]["fallbacks"] == [] and "truncated" not in body["llm"]
    assert body["timings"]["generate_ms"] > 0
    ids = {r["id"] for r in body["results"]}
    assert {c["result_id"] for c in body["citations"]} <= ids


def test_stream_sends_real_tokens_between_results_and_done(llm_backend: Proc) -> None:
    query = {"query": f"How efficient are panels? {time.time()}", "generate": True}
    with llm_backend.client() as c, c.stream("POST", "/api/query/stream", json=query) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse(r.iter_lines()))
    kinds = [k for k, _ in events]
    assert events[-1][1].get("provider") == "openai", events[-1]
    assert kinds[0] == "results" and kinds[-2:] == ["citations", "done"], kinds
    assert set(kinds[1:-2]) == {"token"} and 1 < len(kinds) - 3 <= MAX_TOKENS
    assert events[0][1]["results"][0]["source"] == "solar.md"
    last = events[-1][1]
    assert last["provider"] == "openai" and last["answer"] == "".join(d["text"] for k, d in events if k == "token")
    assert last["timings"]["generate_ms"] > 0


def test_ai_health_reports_the_real_server(llm_backend: Proc, llama: LlamaServer) -> None:
    with llm_backend.client() as c:
        health = c.get("/api/ai/health").json()
        ready = c.get("/ready").json()
    (openai,) = health["providers"]
    assert openai["reachable"], openai  # `detail` says why not
    assert openai["provider"] == "openai" and openai["reachable"] and openai["breaker"] == "closed"
    assert openai["model"] == MODEL_ALIAS and openai["model"] in llama.models()
    assert openai["url"] == llama.url
    assert ready["components"]["llm"]["ok"] and ready["components"]["llm"]["kind"] == "openai"
