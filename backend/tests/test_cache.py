"""Both caches against real servers: the machine's Redis (own DB, own prefix) and a Redis we stop."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
import redis
from conftest import free_port, start_redis

from rag_backend.cache import LocalCache, RedisCache, _redact, digest


@pytest.mark.anyio
async def test_redis_cache_roundtrip_ttl_and_prefix(redis_url: str, prefix: str) -> None:
    cache = RedisCache(redis_url, prefix)
    try:
        assert await cache.get("retrieval", "k") is None
        await cache.set("retrieval", "k", b"v", 1)
        assert await cache.get("retrieval", "k") == b"v"
        raw = redis.Redis.from_url(redis_url)
        assert raw.get(f"{prefix}k") == b"v" and 0 < raw.ttl(f"{prefix}k") <= 1
        await cache.set("retrieval", "zero", b"v", 0)  # TTL 0 disables caching of that kind
        assert raw.get(f"{prefix}zero") is None
        await anyio.sleep(1.2)
        assert await cache.get("retrieval", "k") is None
        assert (await cache.health())[0]
    finally:
        await cache.close()


@pytest.mark.anyio
async def test_redis_down_degrades_fast_and_recovers(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    cache = RedisCache(server.url, "t:", backoff_s=0.5)
    try:
        await cache.set("embedding", "a", b"1", 60)
        assert await cache.get("embedding", "a") == b"1"
        server.stop()
        t0 = time.perf_counter()
        assert await cache.get("embedding", "a") is None
        await cache.set("embedding", "b", b"2", 60)  # dropped, no exception
        assert await cache.get("embedding", "a") is None  # inside the back-off: no network at all
        assert time.perf_counter() - t0 < 2
        ok, detail = await cache.health()
        assert not ok and "unreachable" in detail
    finally:
        await cache.close()


@pytest.mark.anyio
async def test_unreachable_redis_url_never_raises() -> None:
    cache = RedisCache(f"redis://:secret@127.0.0.1:{free_port()}/0", "t:")
    try:
        assert await cache.get("answer", "x") is None
        ok, detail = await cache.health()
        assert not ok and "secret" not in detail
    finally:
        await cache.close()


@pytest.mark.anyio
async def test_local_cache_ttl_and_bound() -> None:
    cache = LocalCache("p:", max_items=2)
    await cache.set("retrieval", "a", b"1", 1)
    await cache.set("retrieval", "b", b"2", 60)
    assert await cache.get("retrieval", "a") == b"1"
    await cache.set("retrieval", "c", b"3", 60)  # evicts one: never more than max_items
    assert len(cache._data) == 2
    await anyio.sleep(1.1)
    assert await cache.get("retrieval", "a") is None


def test_digest_is_canonical_and_redact_hides_passwords() -> None:
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest("x") != digest("y")
    assert _redact("redis://user:pw@host:6379/0") == "redis://***@host:6379/0"
