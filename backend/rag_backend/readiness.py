"""Readiness: every component asked at once, the way queries use it, and the one rule that says whether the
query path works.

Each probe is a real, minimal call on the query path: ml-api embeds one text and reranks one pair with the
backend's own key (so a refused key, a missing model or a refused connection shows here, not only in queries),
the store answers a one-result search on an indexed collection, the cache writes a value and reads it back.
No HTTP here: the ops route turns a `Readiness` into /ready's answer (503 when `serving` is false) and decides
who may see the details unredacted (`rag_backend.redaction`).
The catalog answers a `SELECT 1`. Catalog, embeddings, reranker and store are essential; without the cache the
service is `degraded` (slower, correct); the LLM is reported but never fails readiness, since answers fall back
to extractive ones.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from rag_backend.cache import Cache
from rag_backend.catalog import Catalog
from rag_backend.embedding import Embedder
from rag_backend.errors import DomainError
from rag_backend.llm import Chain
from rag_backend.reranking import Reranker
from rag_backend.store import SearchFilter, SearchRequest, VectorStore
from rag_backend.upstream import UpstreamBusy, busy_fails_fast

ESSENTIAL = ("catalog", "embeddings", "reranker", "store")
Status = Literal["ready", "degraded", "unavailable"]
PROBE_TEXT = "readiness probe"
# One cache key per process: replicas sharing a Redis never read each other's probe value.
CACHE_PROBE_KEY = f"ready-probe:{uuid.uuid4().hex}"
CACHE_PROBE_TTL_S = 60
# A successful ml-api probe (one embedding, one rerank pair) stands this long, so probes every few seconds from
# several replicas do not each send ml-api a forward pass; a failed one is retried on the next probe.
ML_API_PROOF_S = 10.0
# A probe that ml-api accepted but did not answer in time, within this long of a success, is ml-api busy (its queue
# long), not down: a hung ml-api fails its own liveness and is restarted; a refused connection is down at once.
ML_API_SLOW_GRACE_S = 60.0


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


def _failure(exc: BaseException) -> str:
    """A domain error's message is written for people; anything else needs its class to make sense."""
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


async def gather_health(
    checks: Mapping[str, Awaitable[tuple[bool, str]]], timeout_s: float | None = None
) -> dict[str, tuple[bool, str]]:
    """Runs the checks at once, each within `timeout_s`; one that raises or times out reports (False, why)."""

    async def bounded(check: Awaitable[tuple[bool, str]]) -> tuple[bool, str]:
        try:
            return await asyncio.wait_for(check, timeout_s)
        except TimeoutError:
            return False, f"no answer within READY_TIMEOUT_S={timeout_s:g}s"

    names = list(checks)
    outcomes = await asyncio.gather(*(bounded(checks[n]) for n in names), return_exceptions=True)
    return {
        name: (False, _failure(o)) if isinstance(o, BaseException) else o
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


async def catalog_probe(catalog: Catalog) -> tuple[bool, str]:
    """Where documents, jobs and leases live: without it nothing can be listed, uploaded or queried."""
    await catalog.run(catalog.ping)
    return True, catalog.kind


async def embeddings_probe(embedder: Embedder) -> tuple[bool, str]:
    """The model identity (what a query checks a collection against) and one real embedding of a short text."""
    identity = await embedder.identity()
    await embedder.embed([PROBE_TEXT], model=identity.model, retry_read_timeout=False)
    return True, f"{getattr(embedder, 'url', embedder.provider)} ({identity.model}, {identity.dim} dims)"


async def store_probe(store: VectorStore, catalog: Catalog) -> tuple[bool, str]:
    """The store's own health, then a one-result search on an indexed collection (what every query does)."""
    ok, detail = await store.health()
    if not ok:
        return ok, detail
    indexed = [c for c in await catalog.run(catalog.list_collections) if c.get("space")]
    if not indexed:
        return True, f"{detail}; no indexed collection to search yet"
    name, space = indexed[0]["name"], indexed[0]["space"]
    probe = SearchRequest(using="bm25", sparse=([0], [1.0]), limit=1, filter=SearchFilter(collections=name))
    await store.search_batch(space, [probe])
    return True, f"{detail}; searched collection '{name}'"


async def cache_probe(cache: Cache) -> tuple[bool, str]:
    """A ping (whose failure says why), then a value written and read back: a read-only or full Redis fails here."""
    ok, detail = await cache.health()
    if not ok:
        return ok, detail
    value = uuid.uuid4().hex.encode()
    await cache.set("probe", CACHE_PROBE_KEY, value, CACHE_PROBE_TTL_S)
    if await cache.get("probe", CACHE_PROBE_KEY) != value:
        return False, f"{detail}: a value written could not be read back"
    return True, detail


async def busy_is_up(probe: Awaitable[tuple[bool, str]]) -> tuple[bool, str]:
    """A 429 means the upstream is up and full: the replica stays ready (queries get the 429's Retry-After),
    instead of every replica leaving the Service at once when ml-api is saturated."""
    token = busy_fails_fast.set(True)
    try:
        return await probe
    except UpstreamBusy as exc:
        return True, f"busy (counted as up): {exc.message}"
    finally:
        busy_fails_fast.reset(token)


class Recent:
    """Successful upstream probe results, kept for ML_API_PROOF_S; concurrent probes share one call in flight; a
    slow answer soon after a success counts as busy (ML_API_SLOW_GRACE_S)."""

    def __init__(self, ttl_s: float = ML_API_PROOF_S, grace_s: float = ML_API_SLOW_GRACE_S) -> None:
        self.ttl_s, self.grace_s = ttl_s, grace_s
        self._ok: dict[str, tuple[float, tuple[bool, str]]] = {}
        self._running: dict[str, asyncio.Future[tuple[bool, str]]] = {}

    async def __call__(
        self, name: str, probe: Callable[[], Awaitable[tuple[bool, str]]], timeout_s: float | None = None
    ) -> tuple[bool, str]:
        hit = self._ok.get(name)
        age = None if hit is None else time.monotonic() - hit[0]
        if hit is not None and age is not None and age < self.ttl_s:
            return hit[1]
        running = self._running.get(name)
        if running is None or running.done():
            running = self._running[name] = asyncio.ensure_future(busy_is_up(probe()))
        try:
            # Under the caller's own bound (gather_health), so that a slow answer is judged here.
            result = await asyncio.wait_for(asyncio.shield(running), None if timeout_s is None else 0.8 * timeout_s)
        except TimeoutError:
            if age is None or age > self.grace_s:
                raise
            return True, f"busy (counted as up): no answer within {0.8 * timeout_s:g}s, {age:.0f}s after a success"
        if result[0]:
            self._ok[name] = (time.monotonic(), result)
        return result


async def check(
    embedder: Embedder,
    reranker: Reranker,
    store: VectorStore,
    cache: Cache,
    chain: Chain,
    catalog: Catalog,
    timeout_s: float,
    recent: Recent | None = None,
) -> Readiness:
    recent = recent or Recent(0.0)
    checks: dict[str, Awaitable[tuple[bool, str]]] = {
        "catalog": catalog_probe(catalog),
        "embeddings": recent("embeddings", lambda: embeddings_probe(embedder), timeout_s),
        "reranker": recent("reranker", reranker.health, timeout_s),
        "store": store_probe(store, catalog),
        "cache": cache_probe(cache),
        "llm": llm_health(chain),
    }
    results = await gather_health(checks, timeout_s)
    kinds = {
        "catalog": catalog.kind,
        "embeddings": embedder.provider,
        "reranker": "ml-api",
        "store": store.kind,
        "cache": cache.kind,
        "llm": ",".join(p.name for p in chain.providers) or "extractive",
    }
    components = {name: Component(ok, detail, kinds[name]) for name, (ok, detail) in results.items()}
    return Readiness(decide(results), components)
