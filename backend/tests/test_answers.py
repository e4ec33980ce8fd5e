"""LLM answers: the provider chain against local servers speaking the Ollama and OpenAI wire formats over
real HTTP (fallback, timeout, breaker, streaming, cancellation, answer cache), then through the backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import TOKENIZER, Proc, free_port, ingest_solar, sse, start_backend
from fake_llm import FakeLLM

from rag_backend.answers import EXTRACTIVE_NOTE, NO_PASSAGES, Answerer, build_prompt, citations, extractive
from rag_backend.cache import RedisCache
from rag_backend.chunking import load_tokenizer
from rag_backend.core.config import Settings
from rag_backend.llm import Breaker, Chain, Outcome, make_chain

RESULTS = [
    {"id": "r1", "text": "Photovoltaic cells convert sunlight into electricity.", "document_id": "d1",
     "source": "solar.md", "position": 0, "page": None},
    {"id": "r2", "text": "Volcanoes erupt when magma reaches the surface.", "document_id": "d2",
     "source": "volcano.pdf", "position": 3, "page": 2},
]  # fmt: skip
DEAD = f"http://127.0.0.1:{free_port()}"
MESSAGES = [{"role": "user", "content": "What do photovoltaic cells do?"}]


@pytest.fixture
def llm(fake: FakeLLM) -> FakeLLM:
    fake.reset()
    return fake


def settings(**kw: object) -> Settings:
    base: dict[str, object] = {
        "llm_providers": ["ollama", "openai"], "ollama_url": DEAD, "openai_base_url": DEAD,
        "openai_model": "gpt-test", "openai_api_key": "sk-test", "llm_timeout_s": 5.0, "llm_connect_timeout_s": 1.0,
        "llm_breaker_failures": 2, "llm_breaker_reset_s": 0.5,
    }  # fmt: skip
    return Settings(**(base | kw))  # type: ignore[arg-type]


async def run(s: Settings, cache: object, results: list[dict] = RESULTS) -> tuple[list[tuple[str, dict]], Answerer]:
    async with httpx.AsyncClient() as client:
        answerer = Answerer(s, make_chain(s, client), cache, load_tokenizer(TOKENIZER))  # type: ignore[arg-type]
        events = [e async for e in answerer.stream("What do photovoltaic cells do?", results)]
    return events, answerer


@pytest.fixture
async def cache(redis_url: str, prefix: str) -> RedisCache:
    c = RedisCache(redis_url, prefix)
    yield c
    await c.close()


def done(events: list[tuple[str, dict]]) -> dict:
    assert events[-1][0] == "done"
    return events[-1][1]


@pytest.mark.anyio
async def test_ollama_streams_tokens_and_citations_map_to_results(llm: FakeLLM, cache: RedisCache) -> None:
    events, _ = await run(settings(ollama_url=llm.url), cache)
    kinds = [k for k, _ in events]
    assert kinds == ["token", "token", "token", "citations", "done"]
    assert "".join(d["text"] for k, d in events if k == "token") == done(events)["answer"]
    assert done(events)["provider"] == "ollama" and done(events)["fallbacks"] == []
    cites = events[3][1]["citations"]
    assert cites == [{"marker": 1, "result_id": "r1", "collection": None, "document_id": "d1", "source": "solar.md",
                      "page": None, "position": 0, "char_start": None, "char_end": None}]  # fmt: skip
    sent = llm.requests[0]
    assert sent["protocol"] == "ollama" and sent["stream"] is True and sent["model"] == "llama3.2:3b"
    assert "[1] (source: solar.md)" in sent["messages"][1]["content"]
    assert "[2] (source: volcano.pdf, page 2)" in sent["messages"][1]["content"]


@pytest.mark.anyio
async def test_connection_error_falls_back_to_openai(llm: FakeLLM, cache: RedisCache) -> None:
    events, _ = await run(settings(openai_base_url=f"{llm.url}/v1"), cache)
    d = done(events)
    assert d["provider"] == "openai" and d["model"] == "gpt-test"
    assert d["fallbacks"][0]["provider"] == "ollama" and "ConnectError" in d["fallbacks"][0]["error"]
    assert llm.requests[0]["protocol"] == "openai" and llm.requests[0]["auth"] == "Bearer sk-test"


@pytest.mark.anyio
async def test_5xx_falls_back(llm: FakeLLM, cache: RedisCache) -> None:
    llm.behaviour.status = 503
    events, _ = await run(settings(ollama_url=llm.url, openai_base_url=DEAD), cache)
    d = done(events)
    assert d["provider"] == "extractive"
    assert "503" in d["reason"] and "openai" in d["reason"]
    assert "No language model answered" in d["answer"] and "://" not in d["answer"]  # the why is llm.reason
    assert d["answer"].startswith("Photovoltaic cells convert sunlight into electricity [1].")
    assert [c["marker"] for c in events[-2][1]["citations"]] == [1]  # the volcano passage says nothing of cells


@pytest.mark.anyio
async def test_timeout_before_first_token_falls_back_in_time(fake: FakeLLM, cache: RedisCache) -> None:
    with FakeLLM() as slow:
        slow.reset(first_token_delay=3.0)
        fake.reset()
        start = time.perf_counter()
        events, _ = await run(settings(ollama_url=slow.url, openai_base_url=f"{fake.url}/v1", llm_timeout_s=0.5),
                              cache)  # fmt: skip
        elapsed = time.perf_counter() - start
    d = done(events)
    assert d["provider"] == "openai" and "Timeout" in d["fallbacks"][0]["error"]
    assert elapsed < 2.5


@pytest.mark.anyio
async def test_breaker_skips_a_dead_provider_then_retries_it(llm: FakeLLM, cache: RedisCache) -> None:
    llm.behaviour.status = 500
    s = settings(ollama_url=llm.url, llm_providers=["ollama"])
    async with httpx.AsyncClient() as client:
        answerer = Answerer(s, make_chain(s, client), cache, load_tokenizer(TOKENIZER))
        for _ in range(2):  # two failures open the circuit
            [e async for e in answerer.stream(f"q {time.time()}", RESULTS)]
        assert answerer.chain.breakers["ollama"].state == "open"
        calls = len(llm.requests)
        events = [e async for e in answerer.stream(f"q {time.time()}", RESULTS)]
        assert len(llm.requests) == calls, "an open circuit must not call the provider"
        assert "circuit open" in done(events)["reason"]
        await anyio.sleep(0.6)  # reset_s passes: one trial request, which now succeeds
        llm.behaviour.status = 200
        events = [e async for e in answerer.stream(f"q {time.time()}", RESULTS)]
        assert done(events)["provider"] == "ollama" and answerer.chain.breakers["ollama"].state == "closed"


async def _half_open(chain: Chain, llm: FakeLLM) -> Breaker:
    """Two failures open the circuit; after reset_s the next request is its one trial."""
    llm.behaviour.status = 500
    for _ in range(2):
        [t async for t in chain.stream(MESSAGES, Outcome())]
    breaker = chain.breakers["ollama"]
    assert breaker.state == "open"
    await anyio.sleep(0.6)
    assert breaker.state == "half-open"
    llm.behaviour.status = 200
    return breaker


@pytest.mark.anyio
async def test_a_trial_the_client_abandons_leaves_the_provider_usable(llm: FakeLLM) -> None:
    """The trial's stream is closed at its first token (GeneratorExit: the page went away): no verdict, but the next
    request may try again instead of the provider being refused until a restart."""
    s = settings(ollama_url=llm.url, llm_providers=["ollama"])
    async with httpx.AsyncClient() as client:
        chain = make_chain(s, client)
        breaker = await _half_open(chain, llm)
        trial = chain.stream(MESSAGES, Outcome())
        assert await anext(trial) == "Photovoltaic cells "
        await trial.aclose()
        assert not breaker.trial_running and breaker.allow()


@pytest.mark.anyio
async def test_a_body_that_cannot_be_decoded_is_a_failure_not_a_stuck_trial(llm: FakeLLM) -> None:
    """A provider answering a body httpx cannot decode (httpx.DecodingError) fails its trial like any other failure:
    the chain falls back and the breaker tries it again after reset_s."""
    s = settings(ollama_url=llm.url, llm_providers=["ollama"])
    async with httpx.AsyncClient() as client:
        chain = make_chain(s, client)
        breaker = await _half_open(chain, llm)
        llm.behaviour.bad_encoding = True
        outcome = Outcome()
        assert [t async for t in chain.stream(MESSAGES, outcome)] == []
        assert outcome.provider is None and "DecodingError" in outcome.attempts[0].error
        assert breaker.state == "open" and not breaker.trial_running
        await anyio.sleep(0.6)
        llm.behaviour.bad_encoding = False
        outcome = Outcome()
        assert [t async for t in chain.stream(MESSAGES, outcome)] and outcome.provider is not None


@pytest.mark.anyio
async def test_provider_errors_reach_the_caller_without_urls_or_keys(llm: FakeLLM, cache: RedisCache) -> None:
    secret_url = f"http://admin:hunter22@127.0.0.1:{free_port()}"
    events, _ = await run(settings(ollama_url=secret_url, openai_base_url=f"{llm.url}/v1"), cache)
    (fallback,) = done(events)["fallbacks"]
    assert "ConnectError" in fallback["error"] and "<url>" in fallback["error"]
    assert "127.0.0.1" not in fallback["error"] and "hunter22" not in fallback["error"]


@pytest.mark.anyio
async def test_failure_mid_stream_ends_the_answer_truncated(llm: FakeLLM, cache: RedisCache) -> None:
    llm.reset(fail_after=2)
    events, _ = await run(settings(ollama_url=llm.url, openai_base_url=f"{llm.url}/v1"), cache)
    d = done(events)
    assert d["provider"] == "ollama" and d["truncated"]
    assert d["answer"] == "Photovoltaic cells turn light into "
    assert all(r["protocol"] == "ollama" for r in llm.requests), "no restart elsewhere after tokens were sent"


@pytest.mark.anyio
async def test_answer_cache_hit_skips_the_provider(llm: FakeLLM, cache: RedisCache) -> None:
    s = settings(ollama_url=llm.url)
    first, _ = await run(s, cache)
    second, _ = await run(s, cache)
    assert done(first)["cached"] is False and done(second)["cached"] is True
    assert done(second)["answer"] == done(first)["answer"]
    assert len(llm.requests) == 1
    other, _ = await run(s, cache, RESULTS[:1])  # other retrieved chunks, other key
    assert done(other)["cached"] is False and len(llm.requests) == 2


@pytest.mark.anyio
async def test_no_provider_configured_is_extractive(cache: RedisCache) -> None:
    events, _ = await run(settings(llm_providers=[]), cache)
    assert "LLM_PROVIDERS" in done(events)["reason"] and done(events)["provider"] == "extractive"
    events, _ = await run(settings(llm_providers=[]), cache, [])
    assert done(events)["answer"].startswith("No passage")


def test_prompt_trims_context_to_the_budget() -> None:
    tok = load_tokenizer(TOKENIZER)
    long = [{"id": f"r{i}", "text": "word " * 300, "source": f"s{i}.txt"} for i in range(5)]
    messages, used = build_prompt("question?", long, tok, budget=700)
    assert [r["id"] for r in used] == ["r0", "r1"]
    assert "[3]" not in messages[1]["content"] and messages[1]["content"].endswith("Question: question?")
    _, used = build_prompt("q", long, tok, budget=100)  # the first passage is cut rather than dropped
    assert len(used) == 1


def test_citation_markers() -> None:
    ctx = [{"id": f"r{i}"} for i in range(1, 4)]
    ids = [c["result_id"] for c in citations("A [2]. B [1, 3]. C [2][9] D [x]", ctx)]
    assert ids == ["r2", "r1", "r3"]


PASSAGES = [
    {"id": "p1", "text": "# Solar power\n\nPhotovoltaic cells convert sunlight directly into electricity. When "
     "photons\nstrike the silicon, they knock electrons loose.\n\nAn inverter turns direct current into alternating "
     "current."},
    {"id": "p2", "text": "## Efficiency\n\nCommercial panels reach about 22 percent efficiency [7]. Heat lowers the "
     "output of a panel, so installers leave an air gap behind the modules."},
    {"id": "p3", "text": "Photovoltaic cells convert sunlight directly into electricity. Wind turbines spin."},
]  # fmt: skip


def test_extractive_answer_is_a_cited_extract_not_the_passages() -> None:
    answer = extractive("How does heat change the efficiency of solar panels?", PASSAGES)
    body, note = answer.split("\n\n")
    assert note == EXTRACTIVE_NOTE and "://" not in answer
    # The two sentences that share words with the question, in reading order, each cited; nothing else.
    assert body == (
        "Commercial panels reach about 22 percent efficiency (7) [2]. Heat lowers the output of a panel, so installers "
        "leave an air gap behind the modules [2]."
    )  # a source's own "[7]" is not mistaken for a citation marker
    assert [c["result_id"] for c in citations(answer, PASSAGES)] == ["p2"]
    assert all(p["text"] not in answer for p in PASSAGES)

    one = extractive("What do photovoltaic cells do?", PASSAGES)  # one match: the sentence after it carries it on
    assert one.startswith("Photovoltaic cells convert sunlight directly into electricity [1]. When photons strike the "
                          "silicon, they knock electrons loose [1].")  # fmt: skip
    assert one.count("Photovoltaic") == 1  # the same sentence in another passage is quoted once
    nothing = extractive("zebra migration", PASSAGES)  # no shared word: the top passage's opening
    assert nothing.startswith("Solar power") is False and "[1]" in nothing and "[2]" not in nothing
    assert extractive("anything", []) == NO_PASSAGES


def test_extractive_answer_spreads_its_citations_and_never_quotes_a_heading() -> None:
    passages = [
        {"id": "a", "text": "## Heat pump running costs and savings\nA heat pump costs about 900 euros a year to run. "
         "Heat pump running costs fall with a better insulated house. Heat pump costs rise in cold winters."},
        {"id": "b", "text": "Heat Pump Costs Explained\n=========================\nGas boilers cost more to run than "
         "a heat pump in most houses."},
        {"id": "c", "text": "**Heat pump running costs at a glance**\nThe running costs of a heat pump depend on the "
         "electricity price."},
    ]  # fmt: skip
    answer = extractive("What are the running costs of a heat pump?", passages).split("\n\n")[0]
    assert "Heat pump running costs and savings" not in answer  # headings (ATX, setext, a bold line) are not quoted
    assert "Explained" not in answer and "at a glance" not in answer
    cited = [c["result_id"] for c in citations(answer, passages)]
    assert len(cited) == 3 and set(cited) == {"a", "b", "c"}, answer  # each passage has a good sentence: each cited


# -- through the backend ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llm_backend(tmp_path_factory: pytest.TempPathFactory, ml_api: Proc, fake: FakeLLM) -> Iterator[Proc]:
    backend = start_backend(
        tmp_path_factory.mktemp("llm"), ml_api.url, LLM_PROVIDERS="ollama,openai", OLLAMA_URL=fake.url,
        OPENAI_BASE_URL=f"{fake.url}/v1", OPENAI_MODEL="gpt-test", LLM_TIMEOUT_S="5",
    )  # fmt: skip
    ingest_solar(backend)
    yield backend
    backend.stop()


def test_query_generate_adds_answer_and_citations(llm_backend: Proc, llm: FakeLLM) -> None:
    with llm_backend.client() as c:
        body = c.post("/api/query", json={"query": f"What do solar cells do? {time.time()}", "generate": True}).json()
    assert body["answer"] == "Photovoltaic cells turn light into current [1]."
    assert body["llm"]["provider"] == "ollama" and "generate_ms" in body["timings"]
    assert body["citations"][0]["result_id"] == body["results"][0]["id"]


def test_stream_sends_results_tokens_citations_done(llm_backend: Proc, llm: FakeLLM) -> None:
    with (
        llm_backend.client() as c,
        c.stream("POST", "/api/query/stream", json={"query": f"solar cells {time.time()}", "generate": True}) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse(r.iter_lines()))
    kinds = [k for k, _ in events]
    assert kinds[0] == "results" and kinds[-2:] == ["citations", "done"] and kinds.count("token") == 3
    assert events[0][1]["results"][0]["source"] == "solar.md"
    assert {"embed_ms", "search_ms", "generate_ms"} <= set(events[-1][1]["timings"])


def test_stream_without_generate_and_errors_before_streaming(llm_backend: Proc) -> None:
    with llm_backend.client() as c:
        with c.stream("POST", "/api/query/stream", json={"query": "solar"}) as r:
            assert [k for k, _ in sse(r.iter_lines())] == ["results", "done"]
        r = c.post("/api/query/stream", json={"query": "x", "collection": "missing"})
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"


def test_client_disconnect_stops_generation(llm_backend: Proc, llm: FakeLLM) -> None:
    llm.reset(tokens=[f"t{i} " for i in range(100)], token_delay=0.1)
    with (
        llm_backend.client() as c,
        c.stream("POST", "/api/query/stream", json={"query": f"solar {time.time()}", "generate": True}) as r,
    ):
        for kind, _ in sse(r.iter_lines()):
            if kind == "token":
                break  # the user navigates away after the first token
    assert llm.disconnected.wait(5), "the provider kept generating after the client left"
    assert llm.completed == 0


def test_ai_health_and_ready_report_providers(llm_backend: Proc, llm: FakeLLM) -> None:
    with llm_backend.client() as c:
        health = c.get("/api/ai/health").json()
        ready = c.get("/ready").json()
    by_name = {p["provider"]: p for p in health["providers"]}
    assert by_name["ollama"]["reachable"] and by_name["ollama"]["model"] == "llama3.2:3b"
    assert by_name["openai"]["reachable"] and by_name["openai"]["breaker"] == "closed"
    assert ready["components"]["llm"]["ok"] and ready["components"]["llm"]["kind"] == "ollama,openai"
    llm.reset(models=[])
    with llm_backend.client() as c:
        ollama = next(p for p in c.get("/api/ai/health").json()["providers"] if p["provider"] == "ollama")
    assert not ollama["reachable"] and "not pulled" in ollama["detail"]


def test_unused_path_is_not_a_provider(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Settings(llm_providers="ollama,gemini")  # type: ignore[arg-type]
