"""Saved conversations end to end: CRUD on both catalog engines, each user's own conversations and feedback
(AUTH_MODE=users), follow-ups rewritten before retrieval (deterministic fallback and the LLM chain over real HTTP),
an unrelated question left alone, the answer prompt carrying the earlier turns, and hostile input answered with 4xx.

The corpus: two short documents that both state a price, so "and how much does it cost?" alone cannot tell them
apart; only the conversation's subject can.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from access_harness import ADMIN, OPERATOR_KEY, app_running, client, settings_for, signed_in
from conftest import Proc, sse
from fake_llm import FakeLLM

from rag_backend.catalog import open_catalog
from rag_backend.conversations.rewrite import Turn, fallback, is_followup
from rag_backend.conversations.store import ConversationStore

pytestmark = pytest.mark.anyio
PASSWORD = "a-good-password"
HEAT = (
    "# Heat pumps\n\nA heat pump moves warmth from the outside air into the house with a compressor and a "
    "refrigerant loop. Installing an air-source heat pump costs about 12,000 euros, and the price rises with the "
    "size of the house."
)
SOLAR = (
    "# Rooftop solar\n\nPhotovoltaic panels on the roof turn sunlight into electricity for the household. A rooftop "
    "solar installation costs about 8,000 euros before subsidies, and the price falls every year."
)
FOLLOWUP = "And how much does it cost?"
UNRELATED = "Do photovoltaic panels turn sunlight into electricity?"
ASK = {"collection": "homes", "rerank": False, "top_k": 2}


# -- the rewriting rules on their own ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "question",
    [FOLLOWUP, "what about it?", "Does it bind to Dicer?", "Do they show inductive properties?", "Does that help?",
     "And the price?", "...and in winter?", "Is it associated with poorer prognosis in breast cancer?"],
)  # fmt: skip
def test_follow_ups_are_recognised(question: str) -> None:
    assert is_followup(question)


@pytest.mark.parametrize(
    "question",
    [UNRELATED, "What is the capital of France?", "Is it true that aspirin reduces heart attacks?",
     "Anthrax spores can be disposed of easily after they are dispersed.", "How do heat pumps work?",
     "What is the evidence that vitamin D prevents fractures?", "Why do cells divide?"],
)  # fmt: skip
def test_self_contained_questions_are_not_follow_ups(question: str) -> None:
    assert not is_followup(question)


def test_fallback_carries_the_last_subject_only_into_follow_ups() -> None:
    history = [Turn("How do heat pumps work?", "How do heat pumps work?", "They move warmth [1].")]
    rewritten = fallback(FOLLOWUP, history)
    assert rewritten.startswith(FOLLOWUP) and "heat" in rewritten and "pumps" in rewritten
    assert fallback(UNRELATED, history) == UNRELATED  # nothing of the earlier turn is appended
    assert fallback(FOLLOWUP, []) == FOLLOWUP
    # After a change of subject, the follow-up is about the new one only.
    switched = [*history, Turn(UNRELATED, UNRELATED, "Yes [1].")]
    rewritten = fallback(FOLLOWUP, switched)
    assert "photovoltaic" in rewritten and "heat" not in rewritten and "pumps" not in rewritten


# -- the store on both engines ---------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConversationStore]:
    url = None if request.param == "sqlite" else request.getfixturevalue("database_url")
    cat = open_catalog(url, tmp_path)
    yield ConversationStore(cat)
    cat.close()


def test_store_crud_ownership_turns_and_feedback(store: ConversationStore) -> None:
    a = store.create("alice", None)
    time.sleep(0.01)
    b = store.create("alice", "Named")
    store.create("bob", "Bob's")
    assert [c["id"] for c in store.list("alice", 10, 0)] == [b["id"], a["id"]]  # newest first, alice's only
    assert store.get("bob", a["id"]) is None and store.rename("bob", a["id"], "x") is None
    assert not store.delete("bob", a["id"])

    results = [{"id": "chunk-1", "text": "passage"}]
    cites = [{"marker": 1, "result_id": "chunk-1", "document_id": "doc-1"}]
    assert store.add_turn("alice", a["id"], "First question?", "Answer [1].", "First question?", cites, results,
                          "answer-1", "First question?")  # fmt: skip
    assert store.add_turn("alice", a["id"], "And it?", "More.", "And it? first question", [], [], "answer-2", "And it?")
    assert not store.add_turn("bob", a["id"], "q", "a", "q", [], [], "answer-3", "q")  # not bob's: nothing written
    assert store.get("alice", a["id"])["title"] == "First question?"  # the first question titled it, once
    assert store.list("alice", 10, 0)[0]["id"] == a["id"]  # used last: first in the list
    messages = store.messages(a["id"])
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "First question?"), ("assistant", "Answer [1]."), ("user", "And it?"), ("assistant", "More."),
    ]  # fmt: skip
    assert messages[1]["citations"] == cites and messages[1]["results"] == results and messages[0]["results"] == []
    assert [m["id"] for m in store.messages(a["id"], last=2)] == [messages[2]["id"], "answer-2"]

    assert store.message_role("alice", a["id"], messages[0]["id"]) == "user"
    assert store.message_role("bob", a["id"], "answer-1") is None
    assert store.set_feedback("alice", a["id"], messages[0]["id"], 1, None) is None  # a question takes none
    assert store.set_feedback("bob", a["id"], "answer-1", 1, None) is None
    rated = store.set_feedback("alice", a["id"], "answer-1", -1, "wrong source")
    assert rated is not None and rated["feedback"]["rating"] == -1 and rated["feedback"]["comment"] == "wrong source"
    lines = store.feedback("alice", 10)
    assert [(r["question"], r["answer"], r["rating"]) for r in lines] == [("First question?", "Answer [1].", -1)]
    assert store.feedback("bob", 10) == [] and len(store.feedback(None, 10)) == 1

    assert store.rename("alice", b["id"], None)["title"] is None
    assert store.delete("alice", a["id"]) and store.messages(a["id"]) == [] and store.feedback(None, 10) == []
    assert store.get("alice", a["id"]) is None


# -- through the API --------------------------------------------------------------------------------------------------


async def _ready(c: httpx.AsyncClient, doc_id: str) -> None:
    with anyio.fail_after(120):
        while True:
            status = (await c.get(f"/api/documents/{doc_id}")).json()["status"]
            if status in ("ready", "failed"):
                break
            await anyio.sleep(0.05)
    assert status == "ready"


async def _app(settings: Any) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with app_running(settings) as app:
        admin = await signed_in(app, *ADMIN)
        for who in ("alice", "bob"):
            body = {"email": f"{who}@example.test", "role": "viewer", "password": PASSWORD}
            assert (await admin.post("/api/users", json=body)).status_code == 201
        editor = {"email": "editor@example.test", "role": "editor", "password": PASSWORD}
        assert (await admin.post("/api/users", json=editor)).status_code == 201
        owner = await signed_in(app, "editor@example.test", PASSWORD)
        assert (await owner.post("/api/collections", json={"name": "homes"})).status_code == 201
        files = [("files", ("heat.md", HEAT.encode(), "text/markdown")),
                 ("files", ("solar.md", SOLAR.encode(), "text/markdown"))]  # fmt: skip
        r = await owner.post("/api/documents", files=files, data={"collection": "homes"})
        assert r.status_code == 202, r.text
        for doc in r.json()["documents"]:
            await _ready(owner, doc["id"])
        for who in ("alice", "bob"):
            grant = {"email": f"{who}@example.test", "access": "read"}
            assert (await owner.put("/api/collections/homes/members", json=grant)).status_code == 200
        clients = {
            "alice": await signed_in(app, "alice@example.test", PASSWORD),
            "bob": await signed_in(app, "bob@example.test", PASSWORD),
            "admin": admin,
            "operator": client(app, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}),
            "owner": owner,
        }
        yield clients
        for c in clients.values():
            await c.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
async def users(request: pytest.FixtureRequest, tmp_path: Path, ml_api: Proc) -> AsyncIterator[dict]:
    url = None if request.param == "sqlite" else request.getfixturevalue("database_url")
    async for clients in _app(settings_for(tmp_path, ml_api.url, database_url=url)):
        yield clients


async def _new(c: httpx.AsyncClient, **body: Any) -> str:
    r = await c.post("/api/conversations", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _ask(c: httpx.AsyncClient, conversation: str | None, query: str, **extra: Any) -> dict:
    body = {**ASK, "query": query, **extra} | ({"conversation_id": conversation} if conversation else {})
    r = await c.post("/api/query", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _top(out: dict) -> str:
    return str(out["results"][0]["source"])


async def test_each_user_sees_only_their_own_conversations_and_feedback(users: dict) -> None:
    alice, bob, admin, operator = users["alice"], users["bob"], users["admin"], users["operator"]
    mine = await _new(alice)
    theirs = await _new(bob, title="  Bob's   thread ")
    assert (await bob.get(f"/api/conversations/{theirs}")).json()["title"] == "Bob's thread"
    long_question = "How does a heat pump move warmth from the outside air into the house in the coldest winters?"
    first = await _ask(alice, mine, long_question, generate=True)
    assert first["conversation_id"] == mine and first["search_query"] == long_question and first["message_id"]
    await _ask(bob, theirs, "What does rooftop solar cost?", generate=True)

    listed = (await alice.get("/api/conversations")).json()
    assert [c["id"] for c in listed] == [mine]
    title = listed[0]["title"]
    assert len(title) <= 60 and long_question.startswith(title.rstrip("…")) and title.endswith("…")
    detail = (await alice.get(f"/api/conversations/{mine}")).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]
    answer = detail["messages"][1]
    assert answer["id"] == first["message_id"] and answer["content"] == first["answer"]
    assert answer["results"] == first["results"] and answer["citations"] == first["citations"]

    # Another user's conversation is missing to them, on every route, and for an admin and the operator too.
    for other in (bob, admin, operator):
        assert (await other.get(f"/api/conversations/{mine}")).status_code == 404
        assert (await other.patch(f"/api/conversations/{mine}", json={"title": "mine now"})).status_code == 404
        assert (await other.delete(f"/api/conversations/{mine}")).status_code == 404
        fb = await other.post(f"/api/conversations/{mine}/messages/{answer['id']}/feedback", json={"rating": -1})
        assert fb.status_code == 404
        r = await other.post("/api/query", json={**ASK, "query": "x", "conversation_id": mine})
        assert r.status_code == 404 and "conversation" in r.json()["error"]
    # Checked before any work: with a collection that does not exist either, the conversation is what is named.
    r = await bob.post("/api/query/stream", json={"query": "x", "collection": "nope", "conversation_id": mine})
    assert r.status_code == 404 and "conversation" in r.json()["error"]
    assert len((await alice.get(f"/api/conversations/{mine}")).json()["messages"]) == 2  # nothing was added

    fb = await alice.post(f"/api/conversations/{mine}/messages/{answer['id']}/feedback",
                          json={"rating": 1, "comment": "clear"})  # fmt: skip
    assert fb.status_code == 200 and fb.json()["feedback"]["rating"] == 1
    bob_answer = (await bob.get(f"/api/conversations/{theirs}")).json()["messages"][1]["id"]
    r = await bob.post(f"/api/conversations/{theirs}/messages/{bob_answer}/feedback", json={"rating": -1})
    assert r.status_code == 200

    def lines(r: httpx.Response) -> list[dict]:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        return [orjson.loads(line) for line in r.text.splitlines()]

    own = lines(await alice.get("/api/feedback?format=jsonl"))
    assert len(own) == 1 and own[0]["question"] == long_question and own[0]["answer"] == first["answer"]
    assert own[0]["rating"] == 1 and own[0]["comment"] == "clear" and own[0]["search_query"] == long_question
    assert own[0]["cited_chunk_ids"] == [c["result_id"] for c in first["citations"]]
    assert [x["rating"] for x in lines(await bob.get("/api/feedback"))] == [-1]
    assert len(lines(await admin.get("/api/feedback?format=jsonl"))) == 2  # an admin exports everyone's
    assert len(lines(await operator.get("/api/feedback?format=jsonl"))) == 2
    assert len((await bob.get("/api/feedback?format=json")).json()) == 1

    assert (await alice.delete(f"/api/conversations/{mine}")).status_code == 204
    assert (await alice.get(f"/api/conversations/{mine}")).status_code == 404
    assert (await alice.get("/api/conversations")).json() == []
    assert lines(await alice.get("/api/feedback")) == []


async def test_a_pronoun_follow_up_is_rewritten_and_finds_its_subject(users: dict) -> None:
    alice = users["alice"]
    heat, solar = await _new(alice), await _new(alice)
    assert _top(await _ask(alice, heat, "How does a heat pump work?")) == "heat.md"
    assert _top(await _ask(alice, solar, "How do rooftop photovoltaic panels work?")) == "solar.md"

    # The same words find different passages in the two conversations: what the earlier turn was about decides.
    in_heat = await _ask(alice, heat, FOLLOWUP, generate=True)
    in_solar = await _ask(alice, solar, FOLLOWUP, generate=True)
    assert in_heat["search_query"] != FOLLOWUP and "heat" in in_heat["search_query"]
    assert "photovoltaic" in in_solar["search_query"] and "heat" not in in_solar["search_query"]
    assert _top(in_heat) == "heat.md" and _top(in_solar) == "solar.md"
    assert "12,000" in in_heat["answer"] and "8,000" in in_solar["answer"]  # the extract follows the rewritten query
    alone = await _ask(alice, None, FOLLOWUP)
    assert alone["search_query"] == FOLLOWUP and alone["message_id"] is None and alone["conversation_id"] is None
    assert {_top(in_heat), _top(in_solar)} - {_top(alone)}  # without the conversation one of them is lost

    # An unrelated, self-contained question after the heat-pump turns is searched exactly as asked.
    unrelated = await _ask(alice, heat, UNRELATED)
    assert unrelated["search_query"] == UNRELATED and _top(unrelated) == "solar.md"
    messages = (await alice.get(f"/api/conversations/{heat}")).json()["messages"]
    assert [m["search_query"] for m in messages if m["role"] == "user"] == [
        "How does a heat pump work?", in_heat["search_query"], UNRELATED,
    ]  # fmt: skip

    # The stream: `results` and `done` carry search_query and the answer's message id; the turn is kept.
    body = {**ASK, "query": "What about its price?", "conversation_id": solar, "generate": True}
    async with alice.stream("POST", "/api/query/stream", json=body) as r:
        assert r.status_code == 200
        events = list(sse(iter([line async for line in r.aiter_lines()])))
    results, done = events[0][1], events[-1][1]
    assert events[0][0] == "results" and events[-1][0] == "done"
    assert results["search_query"] == done["search_query"] and "photovoltaic" in done["search_query"]
    assert results["message_id"] == done["message_id"] and results["results"][0]["source"] == "solar.md"
    kept = (await alice.get(f"/api/conversations/{solar}")).json()["messages"]
    assert kept[-1]["id"] == done["message_id"] and kept[-1]["content"] == done["answer"]
    assert kept[-2]["content"] == "What about its price?"


async def test_hostile_input_is_refused_with_a_reason(users: dict) -> None:
    alice, bob = users["alice"], users["bob"]
    conv = await _new(alice)
    out = await _ask(alice, conv, "How does a heat pump work?")
    question, answer = [m["id"] for m in (await alice.get(f"/api/conversations/{conv}")).json()["messages"]]
    assert answer == out["message_id"]
    feedback = f"/api/conversations/{conv}/messages/{answer}/feedback"
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "/api/conversations", {"title": "x" * 201}, 422),
        ("POST", "/api/conversations", b'{"title": "bad \\ud800"}', 422),
        ("POST", "/api/conversations", {"title": "ok", "owner": "bob"}, 422),
        ("POST", "/api/conversations", [1, 2], 422),
        ("PATCH", f"/api/conversations/{conv}", {"title": "y" * 10_000}, 422),
        ("PATCH", f"/api/conversations/{conv}", {}, 422),
        ("GET", f"/api/conversations/{'z' * 65}", None, 422),
        ("GET", "/api/conversations/does-not-exist", None, 404),
        ("GET", "/api/conversations?limit=0", None, 422),
        ("GET", "/api/conversations?limit=100000", None, 422),
        ("POST", feedback, {"rating": 0}, 422),
        ("POST", feedback, {"rating": 2}, 422),
        ("POST", feedback, {"rating": "1"}, 422),
        ("POST", feedback, {"rating": 1.0, "comment": "c" * 4001}, 422),
        ("POST", feedback, {}, 422),
        ("POST", f"/api/conversations/{conv}/messages/{question}/feedback", {"rating": 1}, 400),  # a question
        ("POST", f"/api/conversations/{conv}/messages/not-a-message/feedback", {"rating": 1}, 404),
        ("POST", f"/api/conversations/not-a-conversation/messages/{answer}/feedback", {"rating": 1}, 404),
        ("POST", "/api/query", {**ASK, "query": "x", "conversation_id": "z" * 65}, 422),
        ("POST", "/api/query", {**ASK, "query": "x", "conversation_id": "unknown"}, 404),
        ("GET", "/api/feedback?format=xml", None, 422),
    ]
    wrong = []
    for method, path, body, status in cases:
        if isinstance(body, bytes):
            r = await alice.request(method, path, content=body, headers={"content-type": "application/json"})
        else:
            r = await alice.request(method, path, json=body) if body is not None else await alice.request(method, path)
        if r.status_code != status or not r.json().get("error"):
            wrong.append(f"{method} {path} {str(body)[:60]}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    # A message id of another conversation (of the same user, or of another user's) is not in this one.
    other = await _new(alice)
    assert (
        await alice.post(f"/api/conversations/{other}/messages/{answer}/feedback", json={"rating": 1})
    ).status_code == 404
    assert (await bob.post(feedback, json={"rating": 1})).status_code == 404
    assert (
        await alice.post("/api/conversations", content=b"{", headers={"content-type": "application/json"})
    ).status_code == 400
    assert (await alice.get(f"/api/conversations/{conv}")).json()["messages"][1]["feedback"] is None


# -- the LLM's rewriting and the answer prompt's history, against a chat API over real HTTP --------------------------
async def test_the_llm_rewrites_follow_ups_and_the_answer_prompt_carries_the_turns(
    tmp_path: Path, ml_api: Proc, fake: FakeLLM
) -> None:
    fake.reset(tokens=["heat pump ", "installation price"])
    settings = settings_for(
        tmp_path, ml_api.url, llm_providers=["openai"], openai_base_url=f"{fake.url}/v1", openai_model="gpt-test",
        rewrite_max_tokens=24, rewrite_timeout_s=2.0,
    )  # fmt: skip
    async for clients in _app(settings):
        alice = clients["alice"]
        conv = await _new(alice)
        await _ask(alice, conv, "How does a heat pump work?", generate=True)
        assert len(fake.requests) == 1  # no earlier turn: nothing to rewrite, only the answer
        fake.requests.clear()
        out = await _ask(alice, conv, FOLLOWUP, generate=True)
        assert out["search_query"] == "heat pump installation price" and _top(out) == "heat.md"
        rewrite, answer = fake.requests
        assert rewrite["max_tokens"] == 24 and FOLLOWUP in rewrite["messages"][-1]["content"]
        assert "How does a heat pump work?" in rewrite["messages"][-1]["content"]
        roles = [m["role"] for m in answer["messages"]]
        assert roles == ["system", "user", "assistant", "user"]  # the earlier turn, then the question with sources
        assert answer["messages"][1]["content"] == "How does a heat pump work?"
        assert "[1]" not in answer["messages"][2]["content"]  # its markers numbered other sources
        assert answer["messages"][-1]["content"].endswith(f"Question: {FOLLOWUP}")

        # A model too slow for REWRITE_TIMEOUT_S: the deterministic fallback answers in time.
        fake.reset(first_token_delay=4.0)
        started = time.perf_counter()
        slow = await _ask(alice, conv, "What about its noise?")
        assert time.perf_counter() - started < 4.0
        assert slow["search_query"].startswith("What about its noise?") and "heat" in slow["search_query"]
