"""An in-process backend in AUTH_MODE=users (create_app + its lifespan, real catalog, the real ml-api when given)
with signed-in clients: the callers the access tests play."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from rag_backend.api.app import create_app
from rag_backend.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "models" / "all-MiniLM-L6-v2" / "tokenizer.json"
DEAD_URL = "http://127.0.0.1:9"
OPERATOR_KEY = "operator-key-for-tests"
ADMIN = ("admin@example.test", "admin-password-1")


def settings_for(tmp: Path, ml_api_url: str = DEAD_URL, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp / "data",
        "embed_api_url": ml_api_url,
        "rerank_api_url": ml_api_url,
        "ml_api_retries": 0,
        "llm_providers": [],
        "chunk_tokenizer": str(TOKENIZER),
        "auth_mode": "users",
        "api_key": OPERATOR_KEY,
        "admin_email": ADMIN[0],
        "admin_password": ADMIN[1],
    }
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@asynccontextmanager
async def app_running(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client(app: FastAPI, base_url: str = "http://backend", **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url, timeout=60, **kwargs)


async def signed_in(app: FastAPI, email: str, password: str) -> httpx.AsyncClient:
    c = client(app)
    r = await c.post("/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 204, r.text
    return c


def every_route(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves, walking included routers and mounts."""
    out: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI's included router
                walk(r.original_router.routes, prefix + r.include_context.prefix)
            elif isinstance(r, APIRoute | Route):
                out.update((m, prefix + r.path) for m in (r.methods or ()) if m != "HEAD")
            elif isinstance(r, Mount):
                out.add(("GET", prefix + r.path))
            else:
                raise AssertionError(f"a route of a kind the access table cannot read: {r!r}")

    walk(app.router.routes, "")
    return out
