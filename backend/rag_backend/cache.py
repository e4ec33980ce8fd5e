"""Cache for query embeddings, retrieval results and answers: Redis, or an in-process TTL cache.

The cache is an accelerator, never a dependency: when Redis fails, lookups miss, writes are dropped,
the backend keeps answering and /ready reports "degraded". After a failure Redis is left alone for a
short back-off so a dead server costs nothing per request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Literal, Protocol

import orjson
from cachetools import TLRUCache

from rag_backend.core.metrics import CACHE_REQUESTS

log = logging.getLogger("rag_backend.cache")

Kind = Literal["embedding", "retrieval", "answer", "probe"]  # "probe": /ready's write+read, counted apart


def digest(value: object) -> str:
    """Stable key part: sha256 of the canonical JSON (sorted keys) of value."""
    raw = value.encode() if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()


class Cache(Protocol):
    kind: str

    async def get(self, kind: Kind, key: str) -> bytes | None: ...
    async def set(self, kind: Kind, key: str, value: bytes, ttl_s: int) -> None: ...
    async def health(self) -> tuple[bool, str]: ...
    async def close(self) -> None: ...


class LocalCache:
    """Per-entry TTL, LRU-bounded; for the embedded default where no Redis runs."""

    kind = "memory"

    def __init__(self, prefix: str, max_items: int) -> None:
        self.prefix = prefix
        self._data: TLRUCache[str, tuple[bytes, int]] = TLRUCache(
            maxsize=max_items, ttu=lambda _k, v, now: now + v[1], timer=time.monotonic
        )

    async def get(self, kind: Kind, key: str) -> bytes | None:
        entry = self._data.get(self.prefix + key)
        CACHE_REQUESTS.labels(kind, "hit" if entry else "miss").inc()
        return entry[0] if entry else None

    async def set(self, kind: Kind, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s > 0:
            self._data[self.prefix + key] = (value, ttl_s)

    async def health(self) -> tuple[bool, str]:
        return True, f"in-process ({len(self._data)} entries)"

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    kind = "redis"

    def __init__(self, url: str, prefix: str, backoff_s: float = 5.0, timeout_s: float = 0.5) -> None:
        from redis.asyncio import Redis

        self.prefix = prefix
        self.url = url
        self.backoff_s = backoff_s
        self._redis = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
        )
        self._down_until = 0.0
        self._last_error = ""

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        if self._available():
            log.warning("redis unavailable, serving uncached for %.0fs: %s", self.backoff_s, exc)
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._down_until = time.monotonic() + self.backoff_s

    async def get(self, kind: Kind, key: str) -> bytes | None:
        if not self._available():
            CACHE_REQUESTS.labels(kind, "error").inc()
            return None
        try:
            value = await self._redis.get(self.prefix + key)
        except Exception as exc:  # any Redis/network failure degrades to a miss
            self._failed(exc)
            CACHE_REQUESTS.labels(kind, "error").inc()
            return None
        CACHE_REQUESTS.labels(kind, "hit" if value is not None else "miss").inc()
        return value

    async def set(self, kind: Kind, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0 or not self._available():
            return
        try:
            await self._redis.set(self.prefix + key, value, ex=ttl_s)
        except Exception as exc:
            self._failed(exc)

    async def health(self) -> tuple[bool, str]:
        try:
            await self._redis.ping()
        except Exception as exc:
            self._failed(exc)
            return False, f"redis at {_redact(self.url)} unreachable: {self._last_error}"
        self._down_until = 0.0
        return True, f"redis at {_redact(self.url)}"

    async def close(self) -> None:
        await self._redis.aclose()


def _redact(url: str) -> str:
    """Never echo a password from REDIS_URL into /ready or logs."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def open_cache(redis_url: str | None, prefix: str, max_items: int) -> Cache:
    return RedisCache(redis_url, prefix) if redis_url else LocalCache(prefix, max_items)
