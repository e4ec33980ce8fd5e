"""`/health`, `/info`, `/metrics`: what orchestrators, operators and dashboards read."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ml_api import __version__
from ml_api.api.deps import EngineDep, SettingsDep
from ml_api.api.errors import ERRORS
from ml_api.api.routes.common import json_response
from ml_api.core.metrics import REGISTRY
from ml_api.errors import BatchTooLarge

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(engine: EngineDep) -> Response:
    """200 only when a real forward pass of both models succeeds."""
    return json_response({"status": "ok", **await engine.health()})


@router.get("/info")
async def info(engine: EngineDep, settings: SettingsDep) -> Response:
    data = {"version": __version__, **engine.info()}
    # The HTTP side of the limits: what an over-size batch gets, and the body limit the guard enforces.
    data["batching"] |= {
        "over_client_batch": str(ERRORS[BatchTooLarge].status),
        "max_request_bytes": settings.max_request_bytes,
    }
    return json_response(data)


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
