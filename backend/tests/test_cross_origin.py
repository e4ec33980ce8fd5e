"""A hostile page cannot make the user's browser change data here: real backend process, real HTTP, the headers a
browser sends (Origin, Sec-Fetch-Site) on cross-site form posts and fetches, with and without the API key.
Clients that are not browsers (no Origin), the page's own origin, the page behind a proxy (X-Forwarded-Host) and
origins listed in CORS_ALLOW_ORIGINS keep working. The page itself is covered by the Playwright suite, through
the Vite proxy."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import Proc, free_port, start_backend

KEY = "s3cret"
ALLOWED = "http://allowed.example:8080"
DEAD_ML_API = f"http://127.0.0.1:{free_port()}"  # no write below needs embeddings
EVIL = {"origin": "http://evil.example", "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"}
FILES = {"files": ("note.txt", b"Basalt is a volcanic rock.", "text/plain")}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("cross-origin")
    proc = start_backend(tmp, DEAD_ML_API, "guarded", API_KEY=KEY, CORS_ALLOW_ORIGINS=f"{ALLOWED},http://other.example")
    yield proc
    proc.stop()


def writes(client: httpx.Client, headers: dict[str, str]) -> list[httpx.Response]:
    """Every state-changing route once (and the query routes, which spend ml-api and LLM time)."""
    return [
        client.post("/api/collections", json={"name": "hostile"}, headers=headers),
        client.delete("/api/collections/default", headers=headers),
        client.post("/api/documents", files=FILES, data={"collection": "hostile"}, headers=headers),
        client.delete("/api/documents/some-id", headers=headers),
        client.post("/api/query", json={"query": "basalt"}, headers=headers),
        client.post("/api/query/stream", json={"query": "basalt"}, headers=headers),
    ]


@pytest.mark.parametrize(
    "browser",
    [
        EVIL,
        {"origin": "http://evil.example"},  # an older browser: Origin only
        {"sec-fetch-site": "cross-site"},  # Sec-Fetch-Site only
        {"origin": "null", "sec-fetch-site": "cross-site"},  # a sandboxed iframe or a file:// page
        {"origin": "http://127.0.0.1.evil.example"},  # a look-alike of the backend's own host
        {"origin": "http://other.example.evil"},  # a look-alike of an allowed origin
    ],
    ids=["origin+fetch-site", "origin", "fetch-site", "null-origin", "lookalike-host", "lookalike-allowed"],
)
@pytest.mark.parametrize("with_key", [True, False], ids=["key", "no-key"])
def test_cross_site_writes_are_refused_with_a_reason(guarded: Proc, browser: dict[str, str], with_key: bool) -> None:
    auth = {"authorization": f"Bearer {KEY}"} if with_key else {}
    with guarded.client(timeout=30) as client:
        for r in writes(client, browser | auth):
            assert r.status_code == 403, (r.request.method, r.request.url.path, r.text)
            assert r.json()["error_type"] == "forbidden" and "CORS_ALLOW_ORIGINS" in r.json()["error"]
        # Nothing happened: no collection, no document, the default collection is untouched.
        listed = client.get("/api/collections", headers={"x-api-key": KEY}).json()
        assert "hostile" not in {c["name"] for c in listed}
        assert client.get("/api/documents", headers={"x-api-key": KEY}).json()["total"] == 0


def test_cross_site_reads_are_answered_but_not_shared(guarded: Proc) -> None:
    """GETs change nothing and are not refused; CORS keeps their answers from a page on another site."""
    with guarded.client(timeout=30) as client:
        r = client.get("/api/collections", headers=EVIL | {"x-api-key": KEY})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_non_browser_clients_and_the_pages_own_origin_still_write(guarded: Proc) -> None:
    own = guarded.url.removeprefix("http://")  # 127.0.0.1:<port>, the Host a browser on the backend would send
    auth = {"x-api-key": KEY}
    allowed_cases = [
        ("curl / a server (no Origin)", {}),
        ("same origin (e.g. /docs)", {"origin": guarded.url, "sec-fetch-site": "same-origin"}),
        ("same origin, explicit default port", {"origin": "http://localhost", "host": "localhost:80"}),
        (
            "the page behind the Vite proxy or nginx",
            {"origin": "http://localhost:3000", "x-forwarded-host": "localhost:3000", "sec-fetch-site": "same-origin"},
        ),
        ("an origin in CORS_ALLOW_ORIGINS", {"origin": ALLOWED, "sec-fetch-site": "cross-site"}),
        ("user typed the URL", {"sec-fetch-site": "none"}),
    ]
    with guarded.client(timeout=30) as client:
        for i, (what, headers) in enumerate(allowed_cases):
            r = client.post("/api/collections", json={"name": f"ok-{i}"}, headers=headers | auth)
            assert r.status_code == 201, (what, r.text)
            r = client.delete(f"/api/collections/ok-{i}", headers=headers | auth)
            assert r.status_code == 202, (what, r.text)
        # The proxy's own Host does not make a foreign Origin same-origin.
        r = client.post("/api/collections", json={"name": "x"}, headers={"origin": f"http://{own}", "host": "a:1"})
        assert r.status_code == 403


def test_allowed_origin_preflight_needs_no_key(guarded: Proc) -> None:
    """A browser's CORS preflight never carries credentials: it is answered (by CORS) instead of a 401."""
    headers = {
        "origin": ALLOWED,
        "access-control-request-method": "POST",
        "access-control-request-headers": "x-api-key",
    }
    with guarded.client(timeout=30) as client:
        r = client.options("/api/collections", headers=headers)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ALLOWED
        r = client.options("/api/collections", headers=headers | {"origin": "http://evil.example"})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        # Without the preflight header an OPTIONS is an ordinary request: the key is still required.
        assert client.options("/api/collections").status_code == 401


def test_refusal_shows_in_metrics(guarded: Proc) -> None:
    with guarded.client(timeout=30) as client:
        client.post("/api/collections", json={"name": "m"}, headers=EVIL)
        metrics = client.get("/metrics").text
    assert 'status="403"' in metrics
