"""Retry-After on a 503 says something real when the error knows it (an upstream's own Retry-After, a queue's
drain time, set as `exc.retry_after` where it is raised); otherwise the table's default."""

from __future__ import annotations

from rag_backend.api.errors import MAX_RETRY_AFTER_S, RETRY_AFTER_S, mapped_response
from rag_backend.errors import UpstreamError, UpstreamUnavailable


def unavailable(retry_after: object = None) -> UpstreamUnavailable:
    exc = UpstreamUnavailable("ml-api at http://ml-api:8001/embed answered 503: loading")
    exc.retry_after = retry_after  # type: ignore[assignment]  # junk values too: the edge must not trust them
    return exc


def test_the_errors_own_figure_is_passed_through() -> None:
    assert mapped_response(unavailable(17)).headers["retry-after"] == "17"
    assert mapped_response(unavailable(0.2)).headers["retry-after"] == "1"  # whole seconds, at least one
    assert mapped_response(unavailable(10**9)).headers["retry-after"] == str(int(MAX_RETRY_AFTER_S))


def test_without_a_figure_the_default_and_never_on_a_non_retryable_error() -> None:
    assert mapped_response(unavailable()).headers["retry-after"] == str(int(RETRY_AFTER_S))
    for junk in ("17", float("nan"), float("inf"), -3, True):
        assert mapped_response(unavailable(junk)).headers["retry-after"] == str(int(RETRY_AFTER_S))
    refused = UpstreamError("ml-api refused the request (400): bad input")
    refused.retry_after = 30  # type: ignore[attr-defined]
    assert "retry-after" not in mapped_response(refused).headers


def test_an_upstreams_own_retry_after_reaches_our_503() -> None:
    """Over real HTTP: an upstream that keeps answering 429 with Retry-After: 7 (ml-api's queue drain estimate)
    exhausts our retries, and the 503 we answer tells the client those 7 seconds, not our default."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rag_backend.upstream import Upstream

    class Busy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b'{"error": "model is overloaded", "error_type": "overloaded"}'
            self.send_response(429)
            self.send_header("Retry-After", "7")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    async def call() -> UpstreamUnavailable:
        upstream = Upstream(timeout_s=5, retries=1)
        try:
            await upstream.post_json("ml-api", f"http://127.0.0.1:{server.server_port}/embed", {"inputs": ["x"]})
        except UpstreamUnavailable as exc:
            return exc
        finally:
            await upstream.close()
        raise AssertionError("a 429 that never clears must end as UpstreamUnavailable")

    try:
        exc = asyncio.run(call())
    finally:
        server.shutdown()
        server.server_close()
    assert exc.retry_after == 7
    response = mapped_response(exc)
    assert response.status_code == 503 and response.headers["retry-after"] == "7"
