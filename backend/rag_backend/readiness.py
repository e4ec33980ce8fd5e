"""Readiness: every component asked at once, and the one rule that says whether the query path works.

No HTTP here: the ops route turns a `Readiness` into /ready's answer (503 when `serving` is false).
Embeddings, reranker and store are essential; without the cache the service is `degraded` (slower, correct);
the LLM is reported but never fails readiness, since answers fall back to extractive ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Literal

from rag_backend.cache import Cache
from rag_backend.embedding import Embedder
from rag_backend.llm import Chain
from rag_backend.reranking import Reranker
from rag_backend.store import VectorStore

ESSENTIAL = ("embeddings", "reranker", "store")
Status = Literal["ready", "degraded", "unavailable"]


@dataclass(frozen=True, slots=True)
class Component:
    ok: bool
    detail: str
    kind: str


@dataclass(frozen=True, slots=True)
class Readiness:
    status: Status
    components: dict[str, Component]

    @property
    def serving(self) -> bool:
        """False when a query cannot be answered at all (an essential component is down)."""
        return self.status != "unavailable"


async def gather_health(checks: Mapping[str, Awaitable[tuple[bool, str]]]) -> dict[str, tuple[bool, str]]:
    """Runs the checks at once; one that raises reports (False, its error) instead of failing readiness."""
    names = list(checks)
    outcomes = await asyncio.gather(*(checks[n] for n in names), return_exceptions=True)
    return {
        name: (False, f"{type(o).__name__}: {o}") if isinstance(o, BaseException) else o
        for name, o in zip(names, outcomes, strict=True)
    }


def decide(results: Mapping[str, tuple[bool, str]]) -> Status:
    essential = all(results[n][0] for n in ESSENTIAL)
    if not essential:
        return "unavailable"
    return "ready" if results["cache"][0] else "degraded"


async def llm_health(chain: Chain) -> tuple[bool, str]:
    """Not essential: without a provider answers are extractive, which readiness reports but does not fail on."""
    if not chain.providers:
        return True, "no provider configured: extractive answers"
    providers = await chain.health()
    up = [p["provider"] for p in providers if p["reachable"]]
    if up:
        return True, "reachable: " + ", ".join(up)
    return False, "; ".join(f"{p['provider']}: {p['detail']}" for p in providers) + " (answers are extractive)"


async def check(embedder: Embedder, reranker: Reranker, store: VectorStore, cache: Cache, chain: Chain) -> Readiness:
    embeddings = asyncio.ensure_future(embedder.health())
    same_service = embedder.provider == "ml-api" and getattr(embedder, "url", None) == reranker.url
    checks: dict[str, Awaitable[tuple[bool, str]]] = {
        "embeddings": embeddings,
        # One ml-api /health (a forward pass of both models) answers for both when they are the same service.
        "reranker": embeddings if same_service else reranker.health(),
        "store": store.health(),
        "cache": cache.health(),
        "llm": llm_health(chain),
    }
    results = await gather_health(checks)
    kinds = {
        "embeddings": embedder.provider,
        "reranker": "ml-api",
        "store": store.kind,
        "cache": cache.kind,
        "llm": ",".join(p.name for p in chain.providers) or "extractive",
    }
    components = {name: Component(ok, detail, kinds[name]) for name, (ok, detail) in results.items()}
    return Readiness(decide(results), components)
