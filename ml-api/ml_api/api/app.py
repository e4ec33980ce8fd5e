"""App factory: models load once in the lifespan; a broken model path stops startup with its reason."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from ml_api import __version__
from ml_api.api.errors import install_error_handlers
from ml_api.api.fast import FastRoutes
from ml_api.api.middleware import GuardMiddleware
from ml_api.api.routes import FAST_ROUTES, router
from ml_api.args import EngineArgs
from ml_api.core import tracing
from ml_api.core.config import Settings, get_settings
from ml_api.core.runtime import setup_logging
from ml_api.engine import Engine
from ml_api.errors import DeviceUnavailable, ModelError
from ml_api.health import Readiness

log = logging.getLogger("ml_api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Requests are already tokenised concurrently on the engine's threads; tokenizers' own rayon pool on top of
    # that only fights the inference threads for cores (measured: +5% embed throughput on 2 cores with it off).
    # Set here, by the process's entry point, not by a module at import.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    setup_logging("ml-api", settings.log_level, settings.log_json)
    tracing.setup("ml-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            engine = Engine(EngineArgs.from_settings(settings))
        except (ModelError, DeviceUnavailable) as exc:
            log.critical(f"startup failed: {exc}")
            raise SystemExit(f"ml-api startup failed: {exc}") from None
        engine.start()
        app.state.engine = engine
        app.state.readiness = Readiness(engine)
        log.info("ready", extra={"fields": {"port": settings.port, "device": engine.plan.device}})
        try:
            yield
        finally:
            await engine.stop()
            tracing.shutdown()
            log.info("stopped")

    app = FastAPIOffline(  # /docs with Swagger UI's assets served from the package, not a CDN
        title="ml-api",
        version=__version__,
        lifespan=lifespan,
        description="Embeddings and reranking: TEI, OpenAI and Cohere/Jina shapes.",
        # FastAPI's native OpenTelemetry asks three global providers whether to trace, on every request. Tracing
        # here is core.tracing's (the instrumentor, when OTEL_EXPORTER_OTLP_ENDPOINT is set); when it is off,
        # FastAPI's is off too, without the question. When it is on, FastAPI decides as before.
        telemetry=None if tracing.ENABLED else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(FastRoutes, routes=FAST_ROUTES)  # innermost of ours: the guard and CORS wrap its answers
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["traceparent", "x-total-time", "x-inference-time", "x-queue-time", "x-tokenization-time"],
        )
    app.add_middleware(GuardMiddleware, api_key=settings.api_key, max_request_bytes=settings.max_request_bytes)
    tracing.instrument_app(app)  # outermost (no-op when off): the request's span covers the guard's answers too
    return app
