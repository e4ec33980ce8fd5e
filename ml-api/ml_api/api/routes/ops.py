"""`/live`, `/ready`, `/health`, `/info`, `/metrics`: what orchestrators, operators and dashboards read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ml_api import __version__
from ml_api.api.deps import EngineDep, ReadinessDep, SettingsDep
from ml_api.api.errors import ERRORS
from ml_api.api.routes.common import json_response
from ml_api.api.schemas.common import ErrorBody
from ml_api.core.metrics import REGISTRY
from ml_api.engine import Engine
from ml_api.errors import BatchTooLarge
from ml_api.health import liveness

router = APIRouter(tags=["ops"])


@router.get("/live", responses={503: {"model": ErrorBody}})
async def live(engine: EngineDep) -> Response:
    """Liveness: the batchers run and none is stuck; reads state only, never queues behind clients."""
    return json_response({"status": "alive", "batchers": liveness(engine)})


@router.get("/ready", responses={429: {"model": ErrorBody}, 503: {"model": ErrorBody}})
async def ready(readiness: ReadinessDep) -> Response:
    """Readiness: each model answered within the last 30 s, or answers a forward pass now (admitted like a client)."""
    return json_response({"status": "ready", **await readiness.ready()})


@router.get("/health", responses={429: {"model": ErrorBody}, 503: {"model": ErrorBody}})
async def health(readiness: ReadinessDep) -> Response:
    """TEI's /health: readiness's rule, its original body."""
    return json_response({"status": "ok", **dict.fromkeys(await readiness.ready(), "ok")})


def tei_info(engine: Engine) -> dict[str, Any]:
    """TEI's /info fields, describing the default embedder (the model TEI's clients and `POST /` use)."""
    a, slot = engine.args, engine.embedding()
    described = slot.model.describe()
    return {
        "model_id": slot.name,
        "model_sha": None,
        "model_dtype": described["dtype"],
        "model_type": {"embedding": {"pooling": slot.model.pooling}},
        "prompts": None,
        "default_prompt_name": None,
        "default_prompt": None,
        "max_concurrent_requests": a.max_concurrent_requests,
        "max_input_length": slot.model.max_length,
        "max_batch_tokens": engine.max_batch_tokens,
        "max_batch_requests": a.max_batch_size,
        "max_client_batch_size": a.max_client_batch_size,
        "auto_truncate": True,
        "tokenization_workers": engine.tokenization_workers,
        "sha": None,
        "docker_label": None,
    }


@router.get("/info", responses={401: {"model": ErrorBody}})
async def info(engine: EngineDep, settings: SettingsDep) -> Response:
    """Every served model, the device, the batching limits and queues; TEI's fields (default embedder) beside them."""
    data = {**tei_info(engine), "version": __version__, **engine.info()}
    # The HTTP side of the limits: what an over-size batch gets, and the body limit the guard enforces.
    data["batching"] |= {
        "over_client_batch": str(ERRORS[BatchTooLarge].status),
        "max_request_bytes": settings.max_request_bytes,
    }
    return json_response(data)


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
