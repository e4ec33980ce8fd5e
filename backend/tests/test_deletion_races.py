"""A deletion racing the document's own job in the same process, against the real ml-api and the real store.

The job embeds a batch (a request to ml-api, held open here by a gate in front of it), then upserts what came
back. A deletion that purged the document while that request was in flight would be followed by the upsert:
points of a document that no longer exists, which no query filter hides and nothing would ever remove.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from access_harness import OPERATOR_KEY, app_running, client, settings_for
from conftest import Proc
from devharness import ThreadedServer

pytestmark = pytest.mark.anyio
TEXT = b"The lighthouse keeper logs the tide at dawn. The hidden sentence: cobalt herons nest under the pier."


class Gate:
    """An HTTP proxy to ml-api that holds every embeddings request until `release` is set."""

    def __init__(self, upstream: str) -> None:
        self.held, self.release = threading.Event(), threading.Event()
        target = urlsplit(upstream)
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.command == "POST" and self.path.endswith("/embeddings"):
                    gate.held.set()
                    gate.release.wait(60)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body or None, headers)
                reply = conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _forward

        self.http = ThreadedServer(Handler)
        self.url = self.http.url

    def close(self) -> None:
        self.release.set()
        self.http.close()


@pytest.fixture
def gate(ml_api: Proc) -> Iterator[Gate]:
    g = Gate(ml_api.url)
    yield g
    g.close()


async def _until(check: Any, tries: int = 1200) -> None:
    for _ in range(tries):  # 60 s
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_deletion_while_its_job_embeds_leaves_no_point_behind(tmp_path: Path, gate: Gate) -> None:
    async with app_running(settings_for(tmp_path, gate.url)) as app:
        services = app.state.services
        catalog, store, jobs = services.catalog, services.store, services.ingestion.jobs
        async with client(app, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}) as c:
            files = {"files": ("pier.txt", TEXT, "text/plain")}
            r = await c.post("/api/documents", files=files, data={"collection": "c"})
            assert r.status_code == 202, r.text
            doc_id = r.json()["documents"][0]["id"]
            assert await asyncio.to_thread(gate.held.wait, 60), "the job never asked for its embeddings"
            assert doc_id in jobs.running

            r = await c.delete(f"/api/documents/{doc_id}")
            assert r.status_code == 200, r.text
            assert (await c.get(f"/api/documents/{doc_id}")).status_code == 404  # hidden at once
            gate.release.set()  # the vectors come back after the deletion: the job upserts them, then stops

            async def gone() -> bool:
                return doc_id not in jobs.running and await catalog.run(catalog.get_document, doc_id) is None

            await _until(gone)
            space = (await catalog.run(catalog.get_collection, "c")).space
            assert await store.count(space, "c", doc_id) == 0
            r = await c.post("/api/query", json={"query": "who nests under the pier?", "collection": "c"})
            assert r.status_code == 200, r.text
            assert [h for h in r.json()["results"] if h["document_id"] == doc_id] == []
