"""The one exception -> HTTP table (rag_backend.api.errors): every row is there, and each is provoked for real.

The rows are exercised through a small app that carries the real error handlers and whose routes drive the real
dependencies into failure (a closed store, a vanished collection, a dead Redis, a dead ml-api, a locked catalog,
a corrupt PDF). tests/test_app_errors.py does the same through the backend's own routes.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from conftest import free_port
from fastapi import FastAPI
from qdrant_client import AsyncQdrantClient
from redis.asyncio import Redis

from rag_backend import errors, parsing
from rag_backend.api.errors import ERRORS, classify, install_error_handlers, row_for
from rag_backend.cache import RedisCache
from rag_backend.catalog import CatalogUnavailable, open_catalog
from rag_backend.catalog import sqlite as sqlite_catalog
from rag_backend.core.config import Settings
from rag_backend.errors import UpstreamUnavailable
from rag_backend.llm import OllamaProvider, ProviderFailed, ProviderRefused
from rag_backend.redaction import Sensitive
from rag_backend.store import (
    ChunkPoint,
    DimensionMismatch,
    EdgeStore,
    QdrantServerStore,
    SearchFilter,
    SearchRequest,
    StoreError,
)
from rag_backend.upstream import Upstream

DEAD_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
DEAD_REDIS = f"redis://127.0.0.1:{free_port()}/0"

# Today's statuses and error types, which clients (the page, scripts) rely on.
DOMAIN = {
    errors.InvalidInput: (400, "validation"),
    errors.NotFound: (404, "not_found"),
    errors.Conflict: (409, "conflict"),
    errors.TooLarge: (413, "too_large"),
    errors.UnsupportedFormat: (415, "unsupported_format"),
    errors.UpstreamError: (502, "upstream_error"),
    errors.UpstreamUnavailable: (503, "upstream_unavailable"),
    errors.DeadlineExceeded: (504, "timeout"),
}
DEPENDENCY = {
    StoreError: (503, "upstream_unavailable"),
    DimensionMismatch: (409, "conflict"),
    CatalogUnavailable: (503, "upstream_unavailable"),
    redis.RedisError: (503, "upstream_unavailable"),
    redis.ConnectionError: (503, "upstream_unavailable"),
    redis.TimeoutError: (503, "upstream_unavailable"),
    httpx.ConnectError: (503, "upstream_unavailable"),
    httpx.ReadTimeout: (503, "upstream_unavailable"),
    httpx.RemoteProtocolError: (503, "upstream_unavailable"),
    httpx.DecodingError: (502, "upstream_error"),
    httpx.TooManyRedirects: (502, "upstream_error"),
    httpx.HTTPStatusError: (502, "upstream_error"),
    httpx.InvalidURL: (502, "upstream_error"),
    parsing.ParseError: (400, "validation"),
    parsing.UnsupportedFormat: (415, "unsupported_format"),
    ProviderFailed: (503, "upstream_unavailable"),
    ProviderRefused: (502, "upstream_error"),
}


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


# -- the table ------------------------------------------------------------------------------------------------------
def test_every_domain_error_has_its_own_row_with_todays_status() -> None:
    declared = {c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.DomainError)}
    assert declared - {errors.DomainError} == set(DOMAIN), "a new domain error needs a row (and an entry here)"
    for cls, expected in DOMAIN.items():
        assert (ERRORS[cls].status, ERRORS[cls].error_type) == expected, cls
    for sub in _subclasses(errors.DomainError):  # wherever a subclass is declared, it maps through its parent
        assert row_for(sub) is not None, sub


def test_every_dependency_error_has_a_row() -> None:
    for cls, expected in DEPENDENCY.items():
        row = row_for(cls)
        assert row is not None, f"{cls.__module__}.{cls.__qualname__} would be a generic 500"
        assert (row.status, row.error_type) == expected, cls


def test_unavailable_rows_say_when_to_retry() -> None:
    for cls, row in ERRORS.items():
        assert (row.retry_after is not None) == (row.status in (429, 503)), cls  # 429: throttled sign-ins


def test_unknown_errors_are_internal_without_details() -> None:
    mapped = classify(KeyError("the secret row"))
    assert (mapped.status, mapped.error_type) == (500, "internal") and "secret" not in mapped.message


# -- each row, provoked for real ------------------------------------------------------------------------------------
Route = Callable[[], Any]


@pytest.fixture
async def call(tmp_path: Path) -> AsyncIterator[Callable[[Route], Any]]:
    """Runs one coroutine function as a route of an app with the real handlers; returns the HTTP response."""
    app = FastAPI()
    install_error_handlers(app)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def run(route: Route) -> httpx.Response:
        app.router.routes.clear()
        app.add_api_route("/provoke", route, methods=["GET"])
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/provoke")

    yield run


def assert_error(r: httpx.Response, status: int, error_type: str, *words: str) -> dict[str, Any]:
    body = r.json()
    assert (r.status_code, body["error_type"]) == (status, error_type), r.text
    for word in words:
        assert word in body["error"], body
    assert ("retry-after" in r.headers) == (status == 503)
    return body


@pytest.mark.anyio
async def test_closed_store_is_a_503_with_the_reason(call: Any, tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "qdrant")
    await store.ensure_space("s", 4)
    await store.close()
    req = SearchRequest(using="dense", dense=[1.0, 0, 0, 0], limit=1, filter=SearchFilter(collections="c"))

    async def search() -> Any:
        return await store.search_batch("s", [req])

    assert_error(await call(search), 503, "upstream_unavailable", "vector store unavailable", "closed")


@pytest.mark.anyio
async def test_collection_vanished_from_a_qdrant_store_is_a_503(call: Any) -> None:
    client = AsyncQdrantClient(location=":memory:")
    store = QdrantServerStore(client)
    await store.ensure_space("s", 4)
    await client.delete_collection("s")  # behind the store's back
    payload = {"collection": "c", "document_id": "d"}
    point = ChunkPoint("00000000-0000-0000-0000-000000000001", [1.0, 0, 0, 0], [], [], payload)

    async def upsert() -> Any:
        await store.upsert("s", [point])

    try:
        assert_error(await call(upsert), 503, "upstream_unavailable", "vector store unavailable", "'s'")
    finally:
        await store.close()


@pytest.mark.anyio
async def test_dimension_clash_in_the_store_is_a_409(call: Any, tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "qdrant")
    await store.ensure_space("s", 4)

    async def reopen_with_other_dim() -> Any:
        await store.ensure_space("s", 8)

    try:
        assert_error(await call(reopen_with_other_dim), 409, "conflict", "vector store", "dim")
    finally:
        await store.close()


@pytest.mark.anyio
async def test_redis_down_never_reaches_the_client_through_the_cache_and_is_a_503_otherwise(call: Any) -> None:
    cache = RedisCache(DEAD_REDIS, "t:", timeout_s=0.2)
    raw = Redis.from_url(DEAD_REDIS, socket_connect_timeout=0.2)

    async def through_cache() -> Any:
        await cache.set("retrieval", "k", b"v", 60)
        return {"value": await cache.get("retrieval", "k"), "health": await cache.health()}

    async def direct() -> Any:
        return await raw.get("k")

    try:
        r = await call(through_cache)
        assert r.status_code == 200 and r.json()["value"] is None and r.json()["health"][0] is False
        assert_error(await call(direct), 503, "upstream_unavailable", "cache unavailable")
    finally:
        await cache.close()
        await raw.aclose()


@pytest.mark.anyio
async def test_ml_api_down_is_a_503_without_its_internal_url(call: Any) -> None:
    upstream = Upstream(timeout_s=2, retries=0)

    async def embed() -> Any:
        return await upstream.post_json("ml-api", f"{DEAD_URL}/embed", {"inputs": ["x"]})

    try:
        body = assert_error(await call(embed), 503, "upstream_unavailable", "ml-api unavailable at <url>")
        assert "127.0.0.1" not in body["error"]
    finally:
        await upstream.close()


@pytest.mark.anyio
async def test_upstream_refusal_is_a_502(call: Any) -> None:
    upstream = Upstream(timeout_s=2, retries=0)
    await upstream.client.aclose()
    refusal = httpx.Response(400, json={"error": "inputs must not be empty", "error_type": "validation"})
    upstream.client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: refusal))

    async def embed() -> Any:
        return await upstream.post_json("ml-api", "http://ml-api/embed", {"inputs": []})

    try:
        assert_error(await call(embed), 502, "upstream_error", "refused", "inputs must not be empty")
    finally:
        await upstream.close()


@pytest.mark.anyio
async def test_raw_httpx_errors_are_mapped(call: Any) -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": str(request.url)})

    async def connect() -> Any:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(DEAD_URL)).text

    async def redirects() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(loop), follow_redirects=True) as client:
            return (await client.get("http://upstream/a")).text

    async def invalid_url() -> Any:
        async with httpx.AsyncClient() as client:
            return (await client.get("http://[::1")).text

    assert_error(await call(connect), 503, "upstream_unavailable", "upstream unreachable", "ConnectError")
    assert_error(await call(redirects), 502, "upstream_error", "upstream request failed")
    assert_error(await call(invalid_url), 502, "upstream_error", "upstream URL is invalid")


@pytest.mark.anyio
async def test_llm_provider_errors_are_mapped(call: Any) -> None:
    settings = Settings(_env_file=None, ollama_url=DEAD_URL, llm_connect_timeout_s=1)  # type: ignore[call-arg]
    messages = [{"role": "user", "content": "hi"}]
    refusal = httpx.Response(401, json={"error": "bad key"})

    async def down() -> Any:
        async with httpx.AsyncClient() as client:
            return [t async for t in OllamaProvider(client, settings).stream(messages)]

    async def refused() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: refusal)) as client:
            return [t async for t in OllamaProvider(client, settings).stream(messages)]

    body = assert_error(await call(down), 503, "upstream_unavailable", "LLM provider unavailable", "<url>")
    assert DEAD_URL not in body["error"]
    assert_error(await call(refused), 502, "upstream_error", "LLM provider refused", "401", "bad key")


@pytest.mark.anyio
async def test_configured_secrets_and_places_never_reach_a_caller(tmp_path: Path) -> None:
    """An upstream error that echoes a key, a password or a configured endpoint is answered without them, as /ready
    hides them; the log keeps the whole text."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        ml_api_key="sk-live-abcdef",
        redis_url="redis://cache:s3cretpw@redis.internal:6379/0",
        data_dir=tmp_path / "secret-place",
    )
    app = FastAPI()
    app.state.sensitive = Sensitive.of(settings)
    install_error_handlers(app)

    async def leaky() -> Any:
        raise UpstreamUnavailable(
            f"ml-api unavailable: refused key sk-live-abcdef; redis://cache:s3cretpw@redis.internal:6379/0 down; "
            f"wrote {tmp_path / 'secret-place' / 'catalog.sqlite3'}"
        )

    app.add_api_route("/provoke", leaky, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        error = (await client.get("/provoke")).json()["error"]
    assert error.startswith("ml-api unavailable: refused key ***;"), error
    for hidden in ("sk-live-abcdef", "s3cretpw", "redis.internal", "secret-place"):
        assert hidden not in error, error


@pytest.mark.anyio
async def test_locked_catalog_is_a_503(call: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_catalog, "BUSY_TIMEOUT_S", 0.1)  # the default 5 s, shortened for the test
    catalog = open_catalog(None, tmp_path)
    other = sqlite3.connect(tmp_path / "catalog.sqlite3", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock

    async def create() -> Any:
        return catalog.create_collection("c")[1]

    try:
        assert_error(await call(create), 503, "upstream_unavailable", "catalog unavailable", "locked")
    finally:
        other.execute("ROLLBACK")
        other.close()
        catalog.close()


@pytest.mark.anyio
async def test_parsing_errors_that_escape_are_the_uploads_fault(call: Any) -> None:
    async def corrupt_pdf() -> Any:
        return parsing.parse_document(b"%PDF-1.7 this is no PDF", "pdf")

    async def archive() -> Any:
        return parsing.detect_format("bundle.zip", b"PK\x03\x04" + b"\0" * 64, None)

    assert_error(await call(corrupt_pdf), 400, "validation", "PDF")
    assert_error(await call(archive), 415, "unsupported_format", "archive")


@pytest.mark.anyio
async def test_domain_errors_keep_their_message(call: Any) -> None:
    def raising(cls: type[errors.DomainError]) -> Route:
        async def fail() -> Any:
            raise cls(f"the {cls.__name__} reason")

        return fail

    for cls, (status, error_type) in DOMAIN.items():
        assert_error(await call(raising(cls)), status, error_type, f"the {cls.__name__} reason")


@pytest.mark.anyio
async def test_a_bug_is_a_500_without_details(call: Any) -> None:
    async def bug() -> Any:
        return {}["secret-key"]

    body = assert_error(await call(bug), 500, "internal")
    assert body == {"error": "internal error: KeyError", "error_type": "internal"}
