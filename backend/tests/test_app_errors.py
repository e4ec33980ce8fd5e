"""The backend's own routes when a dependency fails, in-process (create_app + its lifespan, no ml-api):
the store closes under a running app, ml-api is down, a body is over the limit, uploads are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKENIZER, free_port

from rag_backend import components
from rag_backend.api import app as app_module
from rag_backend.api.app import create_app
from rag_backend.api.deps import Services
from rag_backend.core.config import Settings
from rag_backend.store import StoreError

DEAD_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
SPACE = "chunks_test_4"

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def running(tmp_path: Path, **overrides: Any) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        embed_api_url=DEAD_URL,
        rerank_api_url=DEAD_URL,
        ml_api_retries=0,
        llm_providers=[],
        chunk_tokenizer=str(TOKENIZER),
        **overrides,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            yield app.state.services, client


async def indexed_collection(svc: Services, name: str = "c") -> None:
    """A collection as ingestion leaves it (model recorded, space created), without needing ml-api."""
    svc.catalog.create_collection(name)
    svc.catalog.bind_collection(name, "ml-api:test:4", SPACE)
    await svc.store.ensure_space(SPACE, 4)


async def test_store_closed_under_a_running_app_is_a_503_and_not_ready(tmp_path: Path) -> None:
    async with running(tmp_path) as (svc, client):
        await indexed_collection(svc)
        lexical = {"query": "basalt", "collection": "c", "dense": False, "rerank": False}
        r = await client.post("/api/query", json=lexical)
        assert r.status_code == 200 and r.json()["results"] == []
        await svc.store.close()
        r = await client.post("/api/query", json={**lexical, "query": "granite"})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["error_type"] == "upstream_unavailable"
        assert r.json()["error"].startswith("vector store unavailable: ") and "closed" in r.json()["error"]
        ready = await client.get("/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        assert not ready.json()["components"]["store"]["ok"]


async def test_ml_api_down_is_a_503_and_lexical_search_still_answers(tmp_path: Path) -> None:
    async with running(tmp_path) as (svc, client):
        await indexed_collection(svc)
        r = await client.post("/api/query", json={"query": "basalt", "collection": "c"})
        assert r.status_code == 503 and r.json()["error_type"] == "upstream_unavailable"
        assert "<url>" in r.json()["error"] and DEAD_URL not in r.json()["error"] and r.headers["retry-after"]
        r = await client.post("/api/query/stream", json={"query": "basalt", "collection": "c"})
        assert r.status_code == 503 and r.headers["content-type"] == "application/json"
        r = await client.post(
            "/api/query", json={"query": "basalt", "collection": "c", "dense": False, "rerank": False}
        )
        assert r.status_code == 200
        ready = (await client.get("/ready")).json()
        assert ready["status"] == "unavailable" and ready["components"]["store"]["ok"]
        assert ready["components"]["cache"] == {
            "ok": True,
            "detail": ready["components"]["cache"]["detail"],
            "kind": "memory",
        }
        assert ready["components"]["llm"]["kind"] == "extractive" and ready["components"]["llm"]["ok"]


async def test_body_over_the_request_limit_is_a_413_naming_the_setting(tmp_path: Path) -> None:
    async with running(tmp_path, max_request_mb=0.01) as (_, client):
        big = [("files", ("big.txt", b"x" * 20_000, "text/plain"))]
        r = await client.post("/api/documents", files=big)
        assert r.status_code == 413 and "MAX_REQUEST_MB" in r.json()["error"] and "limit" in r.json()["error"]

        async def chunked() -> AsyncIterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="files"; filename="s.txt"\r\n\r\n'
            for _ in range(30):
                yield b"y" * 1000

        headers = {"content-type": "multipart/form-data; boundary=b"}
        r = await client.post("/api/documents", content=chunked(), headers=headers)
        assert r.status_code == 413 and "MAX_REQUEST_MB" in r.json()["error"]


async def test_uploads_refused_per_file_and_as_a_whole(tmp_path: Path) -> None:
    async with running(tmp_path, max_upload_mb=0.001) as (_, client):
        files = [
            ("files", ("empty.txt", b"", "text/plain")),
            ("files", ("ok.txt", b"Lichens are fungi living with algae.", "text/plain")),
            ("files", ("big.txt", b"word " * 1000, "text/plain")),
        ]
        r = await client.post("/api/documents", files=files)
        assert r.status_code == 202
        items = r.json()["documents"]
        assert [i["status"] for i in items] == ["rejected", "queued", "rejected"]
        assert [i["error_type"] for i in items] == ["validation", None, "too_large"]

        files = [("files", ("a.zip", b"PK\x03\x04" + b"\0" * 64, None)), ("files", ("b.txt", b"", "text/plain"))]
        r = await client.post("/api/documents", files=files)
        assert r.status_code == 415 and r.json()["error_type"] == "unsupported_format"
        assert "a.zip" in r.json()["error"] and "b.txt: the file is empty" in r.json()["error"]

        r = await client.post("/api/documents", json={"files": []})
        assert r.status_code == 415 and r.json()["error_type"] == "unsupported_format"
        r = await client.post("/api/documents", files=files, data={"collection": "no spaces"})
        assert r.status_code == 400 and r.json()["error_type"] == "validation"


async def test_unknown_routes_methods_and_documents(tmp_path: Path) -> None:
    async with running(tmp_path, api_key="k3y") as (_, client):
        r = await client.get("/api/documents/nope", headers={"x-api-key": "k3y"})
        assert r.status_code == 404 and r.json() == {"error": "document nope not found", "error_type": "not_found"}
        r = await client.get("/nowhere")
        assert r.status_code == 404 and r.json()["error_type"] == "not_found"
        r = await client.put("/health")
        assert r.status_code == 405 and r.json()["error_type"] == "validation"
        r = await client.get("/api/collections", headers={"authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["error_type"] == "auth" and r.headers["www-authenticate"] == "Bearer"
        r = await client.delete("/api/collections/missing", headers={"authorization": "Bearer k3y"})
        assert r.status_code == 404 and r.json()["error_type"] == "not_found"


async def test_a_failure_half_way_through_startup_closes_what_was_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Startup runs through an exit stack: when a part fails to open, the parts opened before it are closed (the
    catalog's connections and threads, the store's shards), not left to the garbage collector."""
    opened: dict[str, Any] = {}
    real_catalog, real_store = components.open_catalog, components.open_store

    def catalog(*args: Any, **kwargs: Any) -> Any:
        opened["catalog"] = real_catalog(*args, **kwargs)
        return opened["catalog"]

    def store(**kwargs: Any) -> Any:
        opened["store"] = real_store(**kwargs)
        return opened["store"]

    def broken_chain(*_: Any) -> Any:
        raise RuntimeError("LLM chain misconfigured")

    monkeypatch.setattr(components, "open_catalog", catalog)
    monkeypatch.setattr(components, "open_store", store)
    monkeypatch.setattr(app_module, "make_chain", broken_chain)
    app = create_app(Settings(_env_file=None, data_dir=tmp_path / "data", chunk_tokenizer=str(TOKENIZER)))  # type: ignore[call-arg]
    with pytest.raises(RuntimeError, match="misconfigured"):
        async with app.router.lifespan_context(app):
            pass
    with pytest.raises(RuntimeError, match="shutdown"):  # its pool of threads is gone, its engine disposed
        await opened["catalog"].run(opened["catalog"].ping)
    with pytest.raises(StoreError, match="closed"):
        await opened["store"].ensure_space("s", 4)
