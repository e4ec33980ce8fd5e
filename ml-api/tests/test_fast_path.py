"""The latency path (api/fast.py): the same answers as FastAPI's routing gives, and only for what it recognises.

A query parameter no route reads (`?via=fastapi`) sends a request through FastAPI's routing (FastAPI ignores it,
the fast path does not take it), so each body below is answered both ways by one real server and compared.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import numpy as np
import pytest

from ml_api.api.fast import FastRoutes
from ml_api.api.routes import FAST_ROUTES

LONG = "word " * 600  # past MiniLM's 256 tokens
BODIES: list[tuple[str, Any]] = [
    ("/embed", {"inputs": "how do solar panels turn sunlight into electricity?"}),
    ("/embed", {"inputs": ["Hello world!", "Proteins fold."], "normalize": False, "unknown_key": 1}),
    ("/embed", {"inputs": [[101, 7592, 2088, 102]], "dimensions": 8}),
    ("/embed", {"inputs": LONG, "truncation_direction": "LEFT"}),
    ("/embed", {"inputs": LONG, "truncate": False}),  # 413 from the engine (a domain error on the fast path)
    ("/embed", {"inputs": "x", "dimensions": 384}),
    ("/embed", {"inputs": ["x"] * 1000}),  # over MAX_CLIENT_BATCH_SIZE: 413
    ("/embed", {"inputs": [[999999]]}),  # outside the vocabulary: 422 from the model
    ("/embed", {"inputs": []}),  # invalid: FastAPI answers it on both paths
    ("/embed", {"inputs": "x", "dimensions": 0}),
    ("/rerank", {"query": "what do proteins do?", "texts": ["They fold.", "Solar panels."], "return_text": True}),
    ("/rerank", {"query": "q", "texts": ["a", "b", "c"], "raw_scores": True, "top_n": 2}),
    ("/rerank", {"query": "q", "texts": []}),
    ("/v1/embeddings", {"input": "hello", "model": "text-embedding-3-large"}),
    ("/v1/embeddings", {"input": ["a", "b"], "encoding_format": "base64", "dimensions": 16}),
    ("/v1/embeddings", {"input": "x", "dimensions": 1000}),  # OpenAI's error shape, from the engine
    ("/v1/embeddings", {"input": 5}),
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, atol=1e-6))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@pytest.mark.parametrize(("path", "body"), BODIES, ids=[f"{p} {json.dumps(b)[:40]}" for p, b in BODIES])
def test_same_answer_as_fastapi_routing(http: httpx.Client, path: str, body: Any) -> None:
    fast = http.post(path, json=body)
    routed = http.post(path, json=body, params={"via": "fastapi"})
    assert fast.status_code == routed.status_code, (fast.text, routed.text)
    assert _same(fast.json(), routed.json()), (fast.text[:300], routed.text[:300])
    assert fast.headers["content-type"] == routed.headers["content-type"]
    if fast.status_code == 200:
        assert {"x-inference-time", "x-queue-time", "x-tokenization-time", "x-total-time"} <= fast.headers.keys()


@pytest.mark.parametrize(
    "raw",
    [
        b'{"inputs": [[' + b"9" * 5000 + b"]]}",  # json.loads refuses past 4300 digits: FastAPI's 400
        b'{"inputs": [[18446744073709551616]]}',  # past 64 bits
        b'{"inputs": "x", "dimensions": NaN}',
        b'{"inputs": "\\ud800"}',
        b'\xef\xbb\xbf{"inputs": "x"}',  # a UTF-8 byte order mark
        b'{"inputs": "a", "inputs": "b"}',
    ],
    ids=["5000-digit-id", "65-bit-id", "nan", "lone-surrogate", "bom", "duplicate-key"],
)
def test_same_answer_for_odd_json(http: httpx.Client, raw: bytes) -> None:
    headers = {"content-type": "application/json"}
    fast = http.post("/embed", content=raw, headers=headers)
    routed = http.post("/embed", content=raw, headers=headers, params={"via": "fastapi"})
    assert fast.status_code == routed.status_code, (fast.text[:300], routed.text[:300])
    assert _same(fast.json(), routed.json()) if fast.status_code == 200 else fast.text == routed.text


def test_tei_model_query_is_honoured(http: httpx.Client) -> None:
    plain = http.post("/embed", json={"inputs": "hi"}).json()
    assert _same(http.post("/embed", params={"model": "any-name"}, json={"inputs": "hi"}).json(), plain)


def test_only_recognised_requests_skip_fastapi() -> None:
    """A valid body is answered without the app behind; anything else reaches it with the body intact."""
    reached: list[tuple[str, bytes]] = []

    async def behind(scope: dict, receive: Any, send: Any) -> None:
        message = await receive()
        reached.append((scope["path"] + "?" + scope["query_string"].decode(), message.get("body", b"")))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    class State:
        engine = None  # set below for the engine-present cases

    class App:
        state = State()

    async def call(path: str, body: bytes, query: bytes = b"") -> int:
        scope = {"type": "http", "method": "POST", "path": path, "query_string": query, "app": App, "headers": []}
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        await FastRoutes(behind, FAST_ROUTES)(scope, receive, send)
        return sent[0]["status"]

    async def run() -> None:
        # No engine yet (before the lifespan): FastAPI's dependency answers 503, so the fast path stays out.
        assert await call("/embed", b'{"inputs": "x"}') == 204
        State.engine = object()  # present; these requests never reach it
        assert await call("/embed", b'{"inputs": "x", "dimensions": 0}') == 204  # does not validate
        assert await call("/embed", b"not json") == 204
        assert await call("/embed", b'{"inputs": "x"}', b"model=a&model=b") == 204
        assert await call("/embed", b'{"inputs": "x"}', b"other=1") == 204
        assert await call("/v1/embeddings", b'{"input": "x"}', b"model=a") == 204  # OpenAI reads no query
        assert await call("/tokenize", b'{"inputs": "x"}') == 204  # not a listed route
        # A valid body goes to the route's own handler, which here meets an engine that is not one: never behind.
        for path, body, query in (("/embed", b'{"inputs": "x"}', b""), ("/embed", b'{"inputs": "x"}', b"model=m")):
            with pytest.raises(AttributeError, match="embedding"):
                await call(path, body, query)
        with pytest.raises(AttributeError, match="embedding"):
            await call("/v1/embeddings", b'{"input": "x"}')
        with pytest.raises(AttributeError, match="reranking"):
            await call("/rerank", b'{"query": "q", "texts": ["a"]}')

    asyncio.run(run())
    assert reached == [
        ("/embed?", b'{"inputs": "x"}'),
        ("/embed?", b'{"inputs": "x", "dimensions": 0}'),
        ("/embed?", b"not json"),
        ("/embed?model=a&model=b", b'{"inputs": "x"}'),
        ("/embed?other=1", b'{"inputs": "x"}'),
        ("/v1/embeddings?model=a", b'{"input": "x"}'),
        ("/tokenize?", b'{"inputs": "x"}'),
    ]
