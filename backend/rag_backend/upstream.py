"""One pooled HTTP client for ml-api and the embeddings API, with timeouts, retries and clear errors.

Retries cover what a retry can fix (connection errors, timeouts, 429, 5xx) with exponential back-off;
a 4xx is the caller's fault and surfaces at once with the upstream's own reason. A read timeout ends as
`UpstreamTimeout`; callers whose requests are expensive pass `retry_read_timeout=False`, because the upstream may
still be working on the request and a re-send doubles that work.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from rag_backend.core.metrics import UPSTREAM_LATENCY
from rag_backend.errors import InvalidInput, UpstreamError, UpstreamUnavailable

RETRY_STATUS = {429, 500, 502, 503, 504}
FALLBACK_TEXTS = 32  # TEI's default max_client_batch_size: fits any TEI-compatible upstream
FALLBACK_BYTES = 1 << 20  # under TEI's default 2 MB payload limit


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request to the upstream may carry, and where that figure came from ("/info" or "fallback")."""

    max_texts: int
    max_bytes: int
    source: str


FALLBACK = Limits(FALLBACK_TEXTS, FALLBACK_BYTES, "fallback")


def limits_from_info(info: Any) -> Limits | None:
    """ml-api nests its limits under `batching`; TEI puts `max_client_batch_size` at the top (and no body limit)."""
    if not isinstance(info, dict):
        return None
    batching = info.get("batching")
    source = batching if isinstance(batching, dict) else info
    texts, size = source.get("max_client_batch_size"), source.get("max_request_bytes")
    if not isinstance(texts, int) or isinstance(texts, bool) or texts < 1:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 1024:
        size = FALLBACK_BYTES
    return Limits(texts, size, "/info")


class UpstreamTimeout(UpstreamUnavailable):
    """An upstream took the request but did not answer in time: it may still be doing the work, so a caller
    that re-sends multiplies it (ingestion halves its batches instead of re-sending them whole). Maps (HTTP)
    through its parent."""


class UpstreamBusy(UpstreamUnavailable):
    """The upstream answered 429: up, and full. Raised at once (no retry) where `busy_fails_fast` is set, as in
    readiness probes, which count it as up; elsewhere a 429 is retried and ends as its parent."""


# Set by readiness probes: a 429 ends the call at once as UpstreamBusy instead of being retried.
busy_fails_fast: ContextVar[bool] = ContextVar("busy_fails_fast", default=False)


class Upstream:
    def __init__(self, timeout_s: float, retries: int, max_connections: int = 64) -> None:
        self.retries = retries
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def post_json(
        self, target: str, url: str, body: Any, key: str | None = None, *, retry_read_timeout: bool = True
    ) -> Any:
        headers = {"content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        content = orjson.dumps(body)
        return await self._call(
            target, "POST", url, content=content, headers=headers, retry_read_timeout=retry_read_timeout
        )

    async def get_json(self, target: str, url: str, key: str | None = None, timeout_s: float | None = None) -> Any:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return await self._call(target, "GET", url, headers=headers, timeout=timeout_s, retries=0)

    async def _call(
        self,
        target: str,
        method: str,
        url: str,
        retries: int | None = None,
        retry_read_timeout: bool = True,
        **kwargs: Any,
    ) -> Any:
        if kwargs.get("timeout") is None:
            kwargs.pop("timeout", None)
        attempts = 1 + (self.retries if retries is None else retries)
        for attempt in range(attempts):
            start = time.perf_counter()
            outcome = "error"
            try:
                response = await self.client.request(method, url, **kwargs)
                outcome = str(response.status_code)
            except httpx.TransportError as exc:  # connect, read timeout, protocol errors
                failure: str = f"{target} unavailable at {url}: {type(exc).__name__} {exc}".strip()
                retry_after = None
                if isinstance(exc, httpx.ReadTimeout) and (not retry_read_timeout or attempt + 1 == attempts):
                    UPSTREAM_LATENCY.labels(target, outcome).observe(time.perf_counter() - start)
                    raise UpstreamTimeout(f"{target} at {url} did not answer within the read timeout") from None
            else:
                if response.status_code < 400:
                    try:
                        return orjson.loads(response.content)
                    except orjson.JSONDecodeError:
                        raise UpstreamError(f"{target} at {url} returned a body that is not JSON") from None
                    finally:
                        UPSTREAM_LATENCY.labels(target, outcome).observe(time.perf_counter() - start)
                reason = _reason(response)
                if response.status_code not in RETRY_STATUS:
                    UPSTREAM_LATENCY.labels(target, outcome).observe(time.perf_counter() - start)
                    raise UpstreamError(f"{target} refused the request ({response.status_code}): {reason}")
                failure = f"{target} at {url} answered {response.status_code}: {reason}"
                retry_after = response.headers.get("retry-after")
                if response.status_code == 429 and busy_fails_fast.get():
                    UPSTREAM_LATENCY.labels(target, outcome).observe(time.perf_counter() - start)
                    raise UpstreamBusy(failure, retry_after=_seconds(retry_after))
            UPSTREAM_LATENCY.labels(target, outcome).observe(time.perf_counter() - start)
            if attempt + 1 < attempts:
                delay = min(4.0, 0.25 * 2**attempt) * (0.5 + random.random())
                if (hinted := _seconds(retry_after)) is not None:
                    delay = max(delay, min(hinted, 5.0))
                await asyncio.sleep(delay)
        raise UpstreamUnavailable(failure, retry_after=_seconds(retry_after))

    async def close(self) -> None:
        await self.client.aclose()


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in delta-seconds (what ml-api, TEI and OpenAI send); an HTTP date is ignored."""
    return float(retry_after) if retry_after and retry_after.strip().isdigit() else None


def _reason(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # OpenAI shape
            return str(err.get("message", err))[:300]
        return str(err or body.get("detail") or body)[:300]
    return str(body)[:300]


def served_models(info: Any, kind: str) -> dict[str, dict[str, Any]] | None:
    """ml-api's `/info` `models` of one kind ("embedding", "reranker"), by served name, default first; None where
    the upstream lists none (TEI, an older ml-api): it serves one model, whatever a request names."""
    models = info.get("models") if isinstance(info, dict) else None
    if not isinstance(models, list):
        return None
    rows = [m for m in models if isinstance(m, dict) and m.get("kind") == kind and isinstance(m.get("id"), str)]
    rows.sort(key=lambda m: not m.get("default"))
    return {m["id"]: m for m in rows} or None


def unknown_model(kind: str, name: str, served: Iterable[str]) -> InvalidInput:
    return InvalidInput(f"unknown {kind} model '{name}': ml-api serves {', '.join(served)}")
