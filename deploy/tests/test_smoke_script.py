"""deploy/smoke/smoke_test.py (what `scripts/stack test` runs in the backend container) against a fake backend that
speaks the routes it uses: the happy path, a document that fails to index (exit 1, collection still deleted), and
the script fed on stdin as `python -` (how the stack command runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import ROOT
from devharness import ThreadedServer

SMOKE = ROOT / "deploy" / "smoke" / "smoke_test.py"


class FakeBackend:
    def __init__(self, index_outcome: str = "ready", api_key: str | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.uploaded = b""
        self.collections: set[str] = set()
        self.polls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if (
                    api_key
                    and self.path.startswith("/api")
                    and self.headers.get("Authorization") != f"Bearer {api_key}"
                ):
                    self._json(401, {"error": "missing or wrong API key", "error_type": "auth"})
                    return False
                return True

            def do_GET(self):
                fake.calls.append(("GET", self.path))
                if not self._authorized():
                    return
                if self.path == "/ready":
                    return self._json(200, {"status": "ready"})
                if self.path == "/api/documents/doc-1":
                    fake.polls += 1
                    status = "embedding" if fake.polls < 3 else index_outcome
                    return self._json(
                        200,
                        {
                            "id": "doc-1",
                            "status": status,
                            "chunks": 2,
                            "error": "no text" if status == "failed" else None,
                        },
                    )
                self._json(404, {"error": "not found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.calls.append(("POST", self.path))
                if not self._authorized():
                    return
                if self.path == "/api/collections":
                    name = json.loads(body)["name"]
                    fake.collections.add(name)
                    return self._json(201, {"name": name})
                if self.path == "/api/documents":
                    assert self.headers["Content-Type"].startswith("multipart/form-data; boundary=")
                    fake.uploaded = body
                    return self._json(202, {"documents": [{"id": "doc-1", "status": "queued"}]})
                if self.path == "/api/query":
                    q = json.loads(body)
                    assert q["collection"] in fake.collections and q["top_k"] == 3
                    text = "The lighthouse keeper of Quillon Point counts exactly seventeen ravens every morning."
                    return self._json(
                        200,
                        {
                            "results": [{"document_id": "doc-1", "text": text}],
                            "timings": {"total_ms": 5.0},
                            "cached": False,
                        },
                    )
                self._json(404, {"error": "not found"})

            def do_DELETE(self):
                fake.calls.append(("DELETE", self.path))
                if not self._authorized():
                    return
                fake.collections.discard(self.path.rsplit("/", 1)[-1])
                self._json(200, {"deleted": True})

        self.http = ThreadedServer(Handler)
        self.url = self.http.url

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def backend():
    started: list[FakeBackend] = []

    def start(**kwargs) -> FakeBackend:
        b = FakeBackend(**kwargs)
        started.append(b)
        return b

    yield start
    for b in started:
        b.close()


def smoke(*args: str, stdin: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin"}
    base.update(env or {})
    if stdin:
        cmd = [sys.executable, "-", *args]
        return subprocess.run(cmd, input=SMOKE.read_text(), capture_output=True, text=True, timeout=60, env=base)
    return subprocess.run([sys.executable, str(SMOKE), *args], capture_output=True, text=True, timeout=60, env=base)


def test_happy_path(backend):
    b = backend()
    r = smoke("--url", b.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("smoke test passed")
    steps = [line.split(":")[0] for line in r.stdout.splitlines()[:-1]]
    collection = b.calls[-1][1].rsplit("/", 1)[-1]
    assert steps == [
        "ok   backend /ready",
        f"ok   create collection {collection}",
        "ok   upload a document",
        "ok   document indexed",
        "ok   query finds it",
        f"ok   delete collection {collection}",
    ]
    assert collection.startswith("smoke-")
    assert b'filename="smoke-test.md"' in b.uploaded and b"seventeen ravens" in b.uploaded
    assert not b.collections, "the throw-away collection is deleted"
    assert b.polls >= 3, "it waits for the document to be indexed"


def test_failed_indexing_fails_and_still_cleans_up(backend):
    b = backend(index_outcome="failed")
    r = smoke("--url", b.url)
    assert r.returncode == 1
    assert "FAIL document indexed" in r.stdout and "smoke test failed at: document indexed" in r.stderr
    assert b.calls[-1][0] == "DELETE" and not b.collections


def test_runs_from_stdin_with_the_api_key_from_the_environment(backend):
    b = backend(api_key="s3cret")
    r = smoke(stdin=True, env={"SMOKE_URL": b.url, "API_KEY": "s3cret"})
    assert r.returncode == 0, r.stdout + r.stderr
    wrong = smoke(stdin=True, env={"SMOKE_URL": b.url, "API_KEY": "wrong"})
    assert wrong.returncode == 1 and "FAIL create collection" in wrong.stdout


def test_unreachable_backend_is_a_clean_failure():
    r = smoke("--url", "http://127.0.0.1:9")
    assert r.returncode == 1 and "smoke test failed at: GET /ready" in r.stderr
