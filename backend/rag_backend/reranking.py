"""Reranking over HTTP with ml-api's (TEI's) /rerank: the cross-encoder runs there, never here.

A pool is split into requests that fit the limits the upstream advertises on its /info (texts per request, bytes
per body), read once and kept; a few requests are in flight at a time and their scores are merged back into pool
order. A read timeout is not re-sent: the upstream may still be scoring that request, and a re-send doubles it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlencode

import orjson

from rag_backend.errors import DomainError, UpstreamError
from rag_backend.upstream import FALLBACK, Limits, Upstream, limits_from_info, served_models, unknown_model

log = logging.getLogger("rag_backend.reranking")

INFO_RETRY_S = 30.0  # an unreadable /info is asked again after this long; the fallback serves meanwhile
PARALLEL = 4  # requests of one pool in flight: keeps the upstream's batcher fed without flooding its queue
BODY_OVERHEAD = 64  # bytes of a /rerank body around the query and the texts


def split(query: str, texts: list[str], limits: Limits) -> list[tuple[int, int]]:
    """Contiguous [start, end) slices of `texts`, each within the text count and the body size (as JSON) limits.

    A single text over the byte limit goes alone: the upstream truncates it, or refuses it with its own reason.
    """
    base = len(orjson.dumps(query)) + BODY_OVERHEAD
    slices: list[tuple[int, int]] = []
    start, size = 0, base
    for i, text in enumerate(texts):
        n = len(orjson.dumps(text)) + 1
        if i > start and (i - start >= limits.max_texts or size + n > limits.max_bytes):
            slices.append((start, i))
            start, size = i, base
        size += n
    if texts:
        slices.append((start, len(texts)))
    return slices


class Reranker:
    def __init__(self, upstream: Upstream, url: str, key: str | None, model: str | None = None) -> None:
        self.upstream, self.url, self.key = upstream, url.rstrip("/"), key
        self.model = model  # QUERY_RERANK_MODEL: the served reranker queries use unless they name one
        self._served: list[str] | None = None  # ml-api's reranker names, read with the limits; None: not listed
        self._limits: Limits | None = None
        self._retry_at = 0.0
        self._lock = asyncio.Lock()

    async def limits(self) -> Limits:
        """The upstream's advertised limits, read once; the fallback while /info cannot be read."""
        if self._limits is None and time.monotonic() >= self._retry_at:
            async with self._lock:
                if self._limits is None and time.monotonic() >= self._retry_at:
                    self._limits = await self._read_limits()
                    if self._limits is None:
                        self._retry_at = time.monotonic() + INFO_RETRY_S
        return self._limits or FALLBACK

    async def _read_limits(self) -> Limits | None:
        try:
            info = await self.upstream.get_json("ml-api", f"{self.url}/info", self.key, timeout_s=5)
        except DomainError as exc:
            log.warning("rerank limits unknown (%s): using %s", exc, FALLBACK)
            return None
        models = served_models(info, "reranker")
        self._served = list(models) if models else None
        limits = limits_from_info(info)
        if limits is None:
            log.warning("rerank limits: %s/info names no max_client_batch_size; using the fallback", self.url)
        return limits

    async def resolve(self, model: str | None) -> str | None:
        """The served reranker a query uses: its own choice, else the setting, else (None) ml-api's default."""
        name = model or self.model
        if name is None:
            return None
        await self.limits()
        if self._served is not None and name not in self._served:
            self._limits, self._retry_at = None, 0.0  # ml-api may have restarted with other models: read again
            await self.limits()
        if self._served is not None and name not in self._served:
            raise unknown_model("reranker", name, self._served)
        return name

    async def scores(self, query: str, texts: list[str], model: str | None = None) -> list[float]:
        """Relevance in [0, 1] (sigmoid of the cross-encoder logit), in the order of texts."""
        if not texts:
            return []
        name = await self.resolve(model)
        slices = split(query, texts, await self.limits())
        out = [0.0] * len(texts)
        gate = asyncio.Semaphore(PARALLEL)

        async def one(start: int, end: int) -> None:
            async with gate:
                part = await self._request(query, texts[start:end], name)
            out[start:end] = part

        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the rest: no work left queued
                for start, end in slices:
                    group.create_task(one(start, end))
        except BaseExceptionGroup as eg:
            first = eg.exceptions[0]
            if isinstance(first, UpstreamError):  # e.g. a 413: the upstream may have restarted with other limits
                self._limits, self._retry_at = None, 0.0  # the next pool reads /info again
            raise first from None
        return out

    async def _request(self, query: str, texts: list[str], model: str | None) -> list[float]:
        body = {"query": query, "texts": texts, "truncate": True}
        url = f"{self.url}/rerank" + (f"?{urlencode({'model': model})}" if model else "")  # TEI's route: by query
        reply = await self.upstream.post_json("ml-api", url, body, self.key, retry_read_timeout=False)
        out = [0.0] * len(texts)
        try:
            for item in reply:
                out[int(item["index"])] = float(item["score"])
        except (KeyError, TypeError, ValueError, IndexError):
            raise UpstreamError("ml-api /rerank reply is not a list of {index, score}") from None
        return out

    async def health(self) -> tuple[bool, str]:
        """One real, authenticated /rerank of one pair: what a query does, so a refused key or model shows here."""
        await self.scores("readiness probe", ["readiness probe"])
        limits = await self.limits()
        return True, f"{self.url} ({limits.max_texts} texts per request, from {limits.source})"
