"""Small local servers speaking Ollama's and OpenAI's chat wire formats (streaming included), over real HTTP.

Neither a real Ollama nor a hosted API can run in tests; these stand in for them at the protocol level and
record what they were asked and whether the client went away mid-answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import uvicorn
from devharness import free_port, wait_for
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Behaviour:
    tokens: list[str] = field(default_factory=lambda: ["Photovoltaic cells ", "turn light into ", "current [1]."])
    status: int = 200  # non-200: answer that status with an error body
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    fail_after: int | None = None  # drop the connection after this many tokens
    models: list[str] = field(default_factory=lambda: ["llama3.2:3b"])
    bad_encoding: bool = False  # say the body is gzip and send bytes that are not (the client's DecodingError)


class FakeLLM:
    """One server for both protocols: Ollama under /api, OpenAI under /v1."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.requests: list[dict] = []
        self.disconnected = threading.Event()
        self.completed = 0
        app = Starlette(
            routes=[
                Route("/api/chat", self._ollama_chat, methods=["POST"]),
                Route("/api/tags", self._ollama_tags),
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/models", self._openai_models),
            ]
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        wait_for(lambda: self._server.started, 10, 0.02, what="the fake LLM server to start")
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    def reset(self, **changes: object) -> None:
        self.behaviour = Behaviour(**changes)  # type: ignore[arg-type]
        self.requests.clear()
        self.disconnected.clear()
        self.completed = 0

    async def _tokens(self, encode) -> object:  # type: ignore[no-untyped-def]
        b = self.behaviour
        try:
            await asyncio.sleep(b.first_token_delay)
            for i, token in enumerate(b.tokens):
                if b.fail_after is not None and i >= b.fail_after:
                    raise ConnectionAbortedError("fake failure mid-stream")
                yield encode(token, False)
                await asyncio.sleep(b.token_delay)
            yield encode("", True)
            self.completed += 1
        except asyncio.CancelledError:
            self.disconnected.set()  # the client closed the connection: generation stops here
            raise

    async def _error(self) -> Response:
        return JSONResponse({"error": f"fake failure {self.behaviour.status}"}, status_code=self.behaviour.status)

    async def _ollama_chat(self, request: Request) -> Response:
        self.requests.append({"protocol": "ollama", **(await request.json())})
        if self.behaviour.status != 200:
            return await self._error()

        def encode(token: str, done: bool) -> bytes:
            return json.dumps({"message": {"role": "assistant", "content": token}, "done": done}).encode() + b"\n"

        if self.behaviour.bad_encoding:
            return Response(b"not gzip at all", media_type="application/x-ndjson", headers={"content-encoding": "gzip"})
        return StreamingResponse(self._tokens(encode), media_type="application/x-ndjson")

    async def _ollama_tags(self, _: Request) -> Response:
        return JSONResponse({"models": [{"name": m} for m in self.behaviour.models]})

    async def _openai_chat(self, request: Request) -> Response:
        self.requests.append({"protocol": "openai", "auth": request.headers.get("authorization"),
                              "traceparent": request.headers.get("traceparent"), **(await request.json())})  # fmt: skip
        if self.behaviour.status != 200:
            return await self._error()

        def encode(token: str, done: bool) -> bytes:
            if done:
                return b"data: [DONE]\n\n"
            chunk = {"choices": [{"index": 0, "delta": {"content": token}}]}
            return b"data: " + json.dumps(chunk).encode() + b"\n\n"

        return StreamingResponse(self._tokens(encode), media_type="text/event-stream")

    async def _openai_models(self, _: Request) -> Response:
        return JSONResponse({"data": [{"id": "gpt-test"}]})
