"""/docs and /redoc work on a box with no internet: every asset the pages reference is served by the backend
itself (from the fastapi-offline package), none from a CDN."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from conftest import Proc, start_backend

REFERENCE = re.compile(r"""(?:href|src|spec-url)\s*=\s*["']([^"']+)["']|\burl\s*:\s*["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_and_every_asset_it_references_come_from_the_backend(backend: Proc, page: str) -> None:
    with backend.client(timeout=30) as client:
        r = client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        refs = [a or b for a, b in REFERENCE.findall(r.text)]
        assert refs, r.text
        assert not [u for u in refs if urlsplit(u).netloc], f"{page} references other hosts: {refs}"
        assert "cdn." not in r.text and "fonts.googleapis" not in r.text
        fetched = {}
        for ref in refs:
            asset = client.get(urljoin(page, ref))
            assert asset.status_code == 200, (ref, asset.status_code)
            fetched[ref] = asset
    scripts = [a for ref, a in fetched.items() if ref.endswith(".js")]
    assert scripts and all(len(a.content) > 100_000 for a in scripts)  # the real bundles, not stubs
    assert any(
        ref.endswith("openapi.json") and a.json()["info"]["title"] == "rag-backend" for ref, a in fetched.items()
    )


def test_docs_assets_need_no_api_key(tmp_path_factory: pytest.TempPathFactory, ml_api: Proc) -> None:
    """With API_KEY set the docs stay open like /health: they show the schema, not data."""
    proc = start_backend(tmp_path_factory.mktemp("docs-key"), ml_api.url, "docs-key", API_KEY="k")
    try:
        with proc.client(timeout=30) as client:
            assert client.get("/docs").status_code == 200
            assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
            assert client.get("/api/collections").status_code == 401
    finally:
        proc.stop()
