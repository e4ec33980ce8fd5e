"""Nothing blocks the event loop: the catalog, hashing, parsing and the embedded store each run on their own bounded
pool, never on the loop's thread and never on asyncio's default executor.

Checked deterministically, not by timing: an in-process backend (create_app + its lifespan, the real ml-api) goes
through uploads, ingestion, a failed job and its retry, listings, queries, a document's and a collection's deletion,
while a SQLAlchemy hook records the thread of every catalog statement and wrappers record where hashing and parsing
ran. A statement run on a thread with a running event loop is a blocking call on the loop: the test names it.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKENIZER, Proc
from docs import SOLAR, VOLCANO_PAGES, pdf_bytes
from sqlalchemy import event

from rag_backend.api.app import create_app
from rag_backend.api.deps import Services
from rag_backend.core.config import Settings
from rag_backend.ingestion import pipeline, submission

pytestmark = pytest.mark.anyio


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Threads:
    """Where each kind of blocking work ran: thread names, and the calls made on a thread running the loop."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}
        self.on_loop: list[str] = []

    def record(self, kind: str, what: str) -> None:
        self.seen.setdefault(kind, set()).add(threading.current_thread().name)
        if _on_loop():
            stack = "".join(traceback.format_stack(limit=12)[:-2])
            self.on_loop.append(f"{kind}: {what[:80]}\n{stack}")


@asynccontextmanager
async def watched(tmp_path: Path, ml_api: Proc, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    threads = Threads()

    def wrap(module: Any, name: str, kind: str) -> None:
        fn = getattr(module, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            threads.record(kind, name)
            return fn(*args, **kwargs)

        monkeypatch.setattr(module, name, recorded)

    wrap(submission, "sha256_hex", "hash")
    wrap(pipeline, "parse_isolated", "parse")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        embed_api_url=ml_api.url,
        rerank_api_url=ml_api.url,
        llm_providers=[],
        chunk_tokenizer=str(TOKENIZER),
        ingest_workers=2,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        svc: Services = app.state.services
        # From here on (startup may read the catalog inline: nothing is served yet), every statement is watched.
        event.listen(svc.catalog.engine, "before_cursor_execute", lambda *a: threads.record("catalog", a[2]))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend", timeout=60) as client:
            yield threads, client, svc


async def _wait(client: httpx.AsyncClient, doc_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        doc = (await client.get(f"/api/documents/{doc_id}")).json()
        if doc["status"] in ("ready", "failed"):
            return doc
        await asyncio.sleep(0.05)
    raise AssertionError(f"{doc_id} not finished: {doc}")


async def test_every_request_path_keeps_blocking_work_off_the_loop(
    tmp_path: Path, ml_api: Proc, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with watched(tmp_path, ml_api, monkeypatch) as (threads, client, svc):
        files = [
            ("files", ("solar.md", SOLAR.encode(), "text/markdown")),
            ("files", ("volcano.pdf", pdf_bytes(VOLCANO_PAGES), "application/pdf")),
            ("files", ("broken.pdf", b"%PDF-1.4 not a pdf at all", "application/pdf")),
        ]
        r = await client.post("/api/documents", files=files, data={"collection": "loop"})
        assert r.status_code == 202, r.text
        solar, volcano, broken = r.json()["documents"]
        assert (await _wait(client, solar["id"]))["status"] == "ready"
        assert (await _wait(client, volcano["id"]))["status"] == "ready"
        assert (await _wait(client, broken["id"]))["status"] == "failed"
        r = await client.post(f"/api/documents/{broken['id']}/retry")
        assert r.status_code == 202
        assert (await _wait(client, broken["id"]))["status"] == "failed"

        assert (await client.get("/api/documents?collection=loop")).json()["total"] == 3
        assert {c["name"] for c in (await client.get("/api/collections")).json()} == {"loop"}
        r = await client.post("/api/query", json={"query": "What do solar panels do?", "collection": "loop"})
        assert r.status_code == 200 and r.json()["results"]
        assert (await client.get(f"/api/documents/{volcano['id']}/text")).status_code == 200  # the kept text
        assert (await client.get(f"/api/documents/{volcano['id']}/content")).content.startswith(b"%PDF")
        assert (await client.get("/ready")).status_code == 200
        assert (await client.delete(f"/api/documents/{solar['id']}")).status_code == 200

        r = await client.delete("/api/collections/loop")
        assert r.status_code == 202
        assert (await client.get("/api/collections")).json() == []
        gone = functools.partial(svc.catalog.run, svc.catalog.get_collection, "loop", deleting=True)
        for _ in range(300):  # the deletion job: claimed by a free slot, a second or two
            if await gone() is None:
                break
            await asyncio.sleep(0.1)
        assert await gone() is None, "the collection's deletion job did not finish"

    assert not threads.on_loop, "blocking calls on the event loop:\n" + "\n".join(threads.on_loop[:3])
    assert threads.seen["catalog"] and all(n.startswith("rag-catalog-sqlite") for n in threads.seen["catalog"])
    assert all(n.startswith("rag-hash") for n in threads.seen["hash"]), threads.seen["hash"]
    assert all(n.startswith("rag-parse") for n in threads.seen["parse"]), threads.seen["parse"]
