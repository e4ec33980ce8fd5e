"""Typed route dependencies (FastAPI `Annotated[..., Depends]`): a route names what it needs, never app.state.

Every dependency is `async def` although none awaits anything: FastAPI runs a plain `def` dependency in its
worker thread pool, a hop to another thread and back on every request (about 0.1-0.4 ms of a short
query's latency on 2 busy cores, docs/benchmarks.md#single-short-text-latency); these only read app.state.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ml_api.core.config import Settings
from ml_api.engine import Engine
from ml_api.errors import Unhealthy
from ml_api.health import Readiness


async def get_engine(request: Request) -> Engine:
    """The engine the lifespan built; before it exists every route is honestly unhealthy (503)."""
    engine: Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise Unhealthy("models are not loaded")
    return engine


async def get_readiness(request: Request) -> Readiness:
    await get_engine(request)  # 503 before the models load
    return request.app.state.readiness


async def get_app_settings(request: Request) -> Settings:
    """The settings this app was created with (not re-read from the environment)."""
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
