"""Shared helpers of the deployment tests: paths, a fake Ollama HTTP API (Python stdlib only); free ports, spawning
and waiting come from the dev harness (devtools/devharness)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from devharness import free_port, spawn, wait_healthy
from devharness import wait_for as wait_for  # the tests wait with it too

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "ollama" / "entrypoint.sh"
STACK = ROOT / "scripts" / "stack"

# A tiny stand-in for Ollama's HTTP API: GET / ("Ollama is running"), GET /api/tags, POST /api/pull (streamed as
# NDJSON progress lines like Ollama does, or one JSON object with "stream": false), DELETE /api/delete.
# HTTP/1.0 (http.server's default), as the entrypoint speaks. Every request is appended to --log as a JSON line.
FAKE_OLLAMA = r"""
import argparse, json, signal, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--models", default="")
p.add_argument("--fail", default="")
p.add_argument("--log", required=True)
a = p.parse_args()
models = [m for m in a.models.split(",") if m]
fail = {m for m in a.fail.split(",") if m}
lock = threading.Lock()


def record(entry):
    with lock, open(a.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


class H(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        record({"method": "GET", "path": self.path})
        if self.path == "/":
            self._send(200, "Ollama is running", "text/plain")
        elif self.path == "/api/tags":
            with lock:
                listed = [{"name": m, "model": m, "size": 1, "details": {"family": "llama", "families": ["llama"]}}
                          for m in models]
            # Python's separators (", ", ": ") on purpose: Ollama writes none, the parser must take both.
            self._send(200, json.dumps({"models": listed}))
        else:
            self._send(404, json.dumps({"error": "not found"}))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        record({"method": "POST", "path": self.path, "body": body, "protocol": self.request_version})
        if self.path != "/api/pull":
            return self._send(404, json.dumps({"error": "not found"}))
        name = body.get("model") or body.get("name")
        if name in fail:
            return self._send(500, json.dumps({"error": "pull model manifest: file does not exist"}))
        with lock:
            models.append(name if ":" in name.rsplit("/", 1)[-1] else name + ":latest")
        if body.get("stream") is False:
            return self._send(200, json.dumps({"status": "success"}))
        lines = [{"status": "pulling manifest"},
                 {"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a07", "total": 100, "completed": 10},
                 {"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a07", "total": 100, "completed": 100},
                 {"status": "verifying sha256 digest"}, {"status": "writing manifest"}, {"status": "success"}]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for line in lines:
            self.wfile.write((json.dumps(line) + "\n").encode())
            self.wfile.flush()


server = ThreadingHTTPServer(("127.0.0.1", a.port), H)
# Like `ollama serve`: SIGTERM is a clean shutdown, exit status 0.
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
record({"event": "listening", "port": a.port})
server.serve_forever()
sys.exit(0)
"""

# A fake `ollama` binary: records how it was called; `serve` runs the fake API on OLLAMA_HOST's port.
FAKE_OLLAMA_BIN = r"""#!/usr/bin/env bash
{
  printf 'ARGS %s\n' "$*"
  printf 'ENV OLLAMA_HOST=%s OLLAMA_MODELS=%s\n' "${OLLAMA_HOST-}" "${OLLAMA_MODELS-<unset>}"
} >>"$FAKE_OLLAMA_CALLS"
case ${1-} in
  serve)
    if [[ -n ${FAKE_SERVE_EXIT-} ]]; then exit "$FAKE_SERVE_EXIT"; fi
    if [[ -n ${FAKE_SERVE_HANG-} ]]; then exec sleep 600; fi
    exec "$FAKE_PYTHON" "$FAKE_SERVER" --port "${OLLAMA_HOST##*:}" --models "${FAKE_MODELS-}" \
      --fail "${FAKE_FAIL-}" --log "$FAKE_REQUESTS"
    ;;
  *) echo "fake ollama: $*" ;;
esac
"""


class FakeOllama:
    """The fake API in its own process, with the requests it saw."""

    def __init__(self, tmp: Path, models: list[str], fail: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"requests-{self.port}.jsonl"
        script = tmp / "fake_ollama.py"
        script.write_text(FAKE_OLLAMA)
        cmd = [sys.executable, str(script), "--port", str(self.port), "--models", ",".join(models)]
        cmd += ["--fail", ",".join(fail or []), "--log", str(self.log)]
        self.service = spawn(cmd, None, tmp / f"fake-ollama-{self.port}.out", url=self.url, name="the fake Ollama")
        wait_healthy(self.service, lambda: self.log.exists() and "listening" in self.log.read_text(), 20, 0.05)

    def requests(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [r for r in map(json.loads, self.log.read_text().splitlines()) if "method" in r]

    def pulls(self) -> list[str]:
        return [r["body"].get("model") for r in self.requests() if r["method"] == "POST" and r["path"] == "/api/pull"]

    def stop(self) -> None:
        self.service.stop(10)


@pytest.fixture
def fake_ollama(tmp_path):
    started: list[FakeOllama] = []

    def start(models: list[str], fail: list[str] | None = None) -> FakeOllama:
        fake = FakeOllama(tmp_path, models, fail)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


def install_fake(tmp_path: Path, name: str, script: str) -> Path:
    """Writes an executable `name` into tmp_path/bin and returns that directory (to put first on PATH)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    binary = bindir / name
    binary.write_text(script)
    binary.chmod(0o755)
    return bindir


@pytest.fixture
def fake_bin(tmp_path) -> dict[str, str]:
    """A PATH whose `ollama` is the fake binary, plus the variables it reads."""
    bindir = install_fake(tmp_path, "ollama", FAKE_OLLAMA_BIN)
    server = tmp_path / "fake_ollama.py"
    server.write_text(FAKE_OLLAMA)
    return {
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "FAKE_OLLAMA_CALLS": str(tmp_path / "ollama-calls.txt"),
        "FAKE_PYTHON": sys.executable,
        "FAKE_SERVER": str(server),
        "FAKE_REQUESTS": str(tmp_path / "served-requests.jsonl"),
    }
