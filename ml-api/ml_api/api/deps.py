"""Typed route dependencies (FastAPI `Annotated[..., Depends]`): a route names what it needs, never app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ml_api.core.config import Settings
from ml_api.engine import Engine
from ml_api.errors import Unhealthy
from ml_api.health import Readiness


def get_engine(request: Request) -> Engine:
    """The engine the lifespan built; before it exists every route is honestly unhealthy (503)."""
    engine: Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        raise Unhealthy("models are not loaded")
    return engine


def get_readiness(request: Request) -> Readiness:
    get_engine(request)  # 503 before the models load
    return request.app.state.readiness


def get_app_settings(request: Request) -> Settings:
    """The settings this app was created with (not re-read from the environment)."""
    return request.app.state.settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
