"""LLM providers as an ordered fallback chain: Ollama (/api/chat) and any OpenAI-compatible chat API.

A provider that cannot connect, times out or answers 5xx before its first token hands the question to the
next one. Each provider has a circuit breaker: after LLM_BREAKER_FAILURES consecutive failures it is skipped
for LLM_BREAKER_RESET_S, then one trial request decides whether it is back. Once tokens have been streamed
to the client, a failure ends the answer there (marked truncated) rather than restarting it elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
import orjson

from rag_backend.core.config import Settings
from rag_backend.redaction import Sensitive

Message = dict[str, str]


class ProviderFailed(Exception):
    """Connection error, timeout, 5xx or a malformed reply: the chain moves on to the next provider."""


class ProviderRefused(Exception):
    """A 4xx (bad key, unknown model): retrying elsewhere may help, but the breaker counts it too."""


class Provider(Protocol):
    name: str
    model: str
    url: str

    def stream(self, messages: list[Message], max_tokens: int | None = None) -> AsyncIterator[str]: ...
    async def health(self) -> tuple[bool, str]: ...


def _timeouts(s: Settings) -> httpx.Timeout:
    # `read` bounds the wait for the first token and between tokens, not the whole answer.
    return httpx.Timeout(connect=s.llm_connect_timeout_s, read=s.llm_timeout_s, write=10.0, pool=5.0)


async def _raise_for_status(response: httpx.Response, name: str) -> None:
    if response.status_code < 400:
        return
    body = (await response.aread())[:300].decode(errors="replace")
    if response.status_code >= 500 or response.status_code == 429:
        raise ProviderFailed(f"{name} answered {response.status_code}: {body}")
    raise ProviderRefused(f"{name} refused the request ({response.status_code}): {body}")


async def _lines(
    client: httpx.AsyncClient, name: str, url: str, body: Any, headers: dict[str, str], limits: httpx.Timeout
) -> AsyncIterator[str]:
    """The streamed reply's lines; transport errors and 4xx/5xx become the chain's exceptions."""
    try:
        async with client.stream("POST", url, json=body, headers=headers, timeout=limits) as response:
            await _raise_for_status(response, name)
            async for line in response.aiter_lines():
                yield line
    except httpx.HTTPError as exc:  # unreachable, cut off, or a body that cannot be decoded: the provider failed
        raise ProviderFailed(f"{name} at {url}: {type(exc).__name__} {exc}".strip()) from None


def _json(text: str, name: str) -> dict[str, Any]:
    try:
        event = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProviderFailed(f"{name} sent something that is not JSON: {text[:100]}") from None
    if not isinstance(event, dict):
        raise ProviderFailed(f"{name} sent an unexpected event: {text[:100]}")
    if event.get("error"):
        raise ProviderFailed(f"{name}: {event['error']}")
    return event


class OllamaProvider:
    name = "ollama"

    def __init__(self, client: httpx.AsyncClient, s: Settings) -> None:
        self.client, self.url, self.model, self.s = client, s.ollama_url.rstrip("/"), s.ollama_model, s

    async def stream(self, messages: list[Message], max_tokens: int | None = None) -> AsyncIterator[str]:
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "options": {"temperature": self.s.llm_temperature, "num_predict": max_tokens or self.s.llm_max_tokens},
        }
        async for line in _lines(self.client, "ollama", f"{self.url}/api/chat", body, {}, _timeouts(self.s)):
            if not line.strip():
                continue
            event = _json(line, "ollama")
            if text := (event.get("message") or {}).get("content"):
                yield text
            if event.get("done"):
                return

    async def health(self) -> tuple[bool, str]:
        try:
            r = await self.client.get(f"{self.url}/api/tags", timeout=3.0)
            r.raise_for_status()
            models = {m.get("name") for m in r.json().get("models", [])}
        except (httpx.HTTPError, ValueError) as exc:
            return False, f"{self.url}: {type(exc).__name__} {exc}".strip()
        if self.model not in models and f"{self.model}:latest" not in models:
            return False, f"{self.url} answers but model {self.model} is not pulled"
        return True, self.url


class OpenAIProvider:
    name = "openai"

    def __init__(self, client: httpx.AsyncClient, s: Settings) -> None:
        self.client, self.url, self.model, self.s = client, s.openai_base_url.rstrip("/"), s.openai_model, s
        self.headers = {"authorization": f"Bearer {s.openai_api_key}"} if s.openai_api_key else {}

    async def stream(self, messages: list[Message], max_tokens: int | None = None) -> AsyncIterator[str]:
        body = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "temperature": self.s.llm_temperature,
            "max_tokens": max_tokens or self.s.llm_max_tokens,
        }
        url = f"{self.url}/chat/completions"
        async for line in _lines(self.client, "openai", url, body, self.headers, _timeouts(self.s)):
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            for choice in _json(data, "openai").get("choices") or []:
                if text := (choice.get("delta") or {}).get("content"):
                    yield text

    async def health(self) -> tuple[bool, str]:
        try:
            r = await self.client.get(f"{self.url}/models", headers=self.headers, timeout=3.0)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            return False, f"{self.url}: {type(exc).__name__} {exc}".strip()
        return True, self.url


@dataclass
class Breaker:
    failures_to_open: int
    reset_s: float
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial_running:
            self.trial_running = True  # one request probes a provider that may be back
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self.trial_running = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.trial_running = False
        if self.failures >= self.failures_to_open or self.opened_at is not None:
            self.opened_at = time.monotonic()


@dataclass
class Attempt:
    provider: str
    error: str


@dataclass
class Outcome:
    """How one pass through the chain ended; filled in while the tokens stream."""

    attempts: list[Attempt] = field(default_factory=list)  # providers skipped or failed before the answer
    provider: Provider | None = None  # who answered; None when nobody did
    cached: bool = False  # the answer came whole from the caller's cache for that provider
    truncated: str | None = None  # the provider failed after its first token: the answer ends there, why


Lookup = Callable[[Provider], Awaitable[str | None]]


class Chain:
    def __init__(self, providers: list[Provider], s: Settings) -> None:
        self.providers = providers
        self.breakers = {p.name: Breaker(s.llm_breaker_failures, s.llm_breaker_reset_s) for p in providers}
        self.sensitive = Sensitive.of(s)  # a provider's error reaches the caller (fallbacks, truncated): no URL, key

    async def stream(
        self, messages: list[Message], outcome: Outcome, cached: Lookup | None = None, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        """The answer's tokens from the first provider that answers, falling back in order and keeping the breakers.

        `max_tokens`: a smaller output budget than LLM_MAX_TOKENS (a follow-up's rewriting asks for a short query).

        `cached` may hold a provider's earlier answer to these messages: it is yielded whole, in the provider's
        turn and before its breaker is asked, as if the provider had answered. `outcome` says who answered.
        """
        for provider in self.providers:
            if cached is not None and (hit := await cached(provider)) is not None:
                outcome.provider, outcome.cached = provider, True
                yield hit
                return
            breaker = self.breakers[provider.name]
            if not breaker.allow():
                outcome.attempts.append(Attempt(provider.name, "skipped: circuit open after repeated failures"))
                continue
            streamed = judged = False
            try:
                async for text in provider.stream(messages, max_tokens):
                    streamed = True
                    yield text
                breaker.success()
                judged = True
            except (ProviderFailed, ProviderRefused) as exc:
                breaker.failure()
                judged = True
                reason = self.sensitive.hide(str(exc))
                if not streamed:
                    outcome.attempts.append(Attempt(provider.name, reason))
                    continue
                outcome.truncated = reason  # tokens already reached the client: end the answer here
            finally:
                # Anything else ends a trial without a verdict: the client left (CancelledError, or GeneratorExit
                # when the stream is closed at a token), or a bug. The next request may try the provider again,
                # instead of finding it refused until a restart.
                if not judged:
                    breaker.trial_running = False
            outcome.provider = provider
            return

    async def health(self) -> list[dict[str, Any]]:
        out = []
        for p in self.providers:
            ok, detail = await p.health()
            breaker = self.breakers[p.name]
            out.append(
                {"provider": p.name, "model": p.model, "url": p.url, "reachable": ok, "detail": detail,
                 "breaker": breaker.state, "consecutive_failures": breaker.failures}
            )  # fmt: skip
        return out


def make_chain(s: Settings, client: httpx.AsyncClient) -> Chain:
    factories = {"ollama": OllamaProvider, "openai": OpenAIProvider}
    return Chain([factories[name](client, s) for name in s.llm_providers], s)
