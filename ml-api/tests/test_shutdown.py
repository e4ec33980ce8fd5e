"""SIGTERM lets in-flight requests finish before the process exits."""

from __future__ import annotations

import signal
import threading
import time

import httpx
from conftest import start_server, stop_server


def test_graceful_shutdown_finishes_in_flight(tmp_path) -> None:
    server = start_server(tmp_path, "shutdown")
    texts = ["graceful shutdown keeps this request alive until its vectors are sent " * 8] * 384
    result: dict[str, object] = {}

    def call() -> None:
        try:
            res = httpx.post(server.url + "/embed", json={"inputs": texts}, timeout=120)
            result["status"], result["rows"] = res.status_code, len(res.json())
        except httpx.HTTPError as exc:
            result["error"] = repr(exc)

    worker = threading.Thread(target=call)
    worker.start()
    # SIGTERM only once the request is admitted: before that, uvicorn rightly refuses a connection it has not read.
    deadline = time.monotonic() + 60
    while httpx.get(server.url + "/info", timeout=10).json()["queue"]["in_flight"] < 1:
        assert time.monotonic() < deadline, "the request never reached the engine"
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    worker.join(120)
    assert result == {"status": 200, "rows": 384}
    assert stop_server(server) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean drain
    log = server.output()
    assert '"msg": "stopped"' in log or '"msg":"stopped"' in log
    try:
        httpx.get(server.url + "/health", timeout=2)
        raise AssertionError("server still answering after shutdown")
    except httpx.HTTPError:
        pass
