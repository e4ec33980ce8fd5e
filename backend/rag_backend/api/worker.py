"""`rag-backend worker`: ingestion alone, as many processes and machines as the queue needs; its HTTP side.

It claims jobs from the shared catalog (PostgreSQL, or SQLite on one machine) like the API process's own slots do,
and serves only what an orchestrator asks of it: /health (the process answers), /ready (catalog and store reachable,
leases renewed on time) and /metrics (its rag_ingest_* counters), with no API key. A shared store (QDRANT_URL) is
required: the embedded Qdrant belongs to one process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rag_backend import __version__
from rag_backend.components import open_core
from rag_backend.core import tracing
from rag_backend.core.config import WORKER_NEEDS_STORE, Settings, get_settings
from rag_backend.core.runtime import setup_logging
from rag_backend.readiness import catalog_probe, gather_health

log = logging.getLogger("rag_backend.worker")


def create_app() -> FastAPI:
    """uvicorn's factory: the settings of the environment (`rag-backend worker` puts --concurrency there)."""
    settings = get_settings()
    setup_logging("backend", settings.log_level, settings.log_json, quiet=("httpx",))
    return create_worker_app(settings, settings.worker_concurrency)


def create_worker_app(settings: Settings, concurrency: int) -> FastAPI:
    if not settings.qdrant_url:
        raise ValueError(WORKER_NEEDS_STORE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if tracing.setup("backend-worker"):
            tracing.instrument_httpx()
        async with open_core(settings, concurrency) as core:
            app.state.core = core
            await core.ingestion.start()
            owner = core.ingestion.jobs.owner
            fields = {
                "owner": owner,
                "concurrency": concurrency,
                "catalog": core.catalog.kind,
                "store": core.store.kind,
            }
            log.info("worker ready", extra={"fields": fields})
            try:
                yield
            finally:
                tracing.shutdown()
        log.info("worker stopped", extra={"fields": {"owner": owner}})

    app = FastAPI(title="rag-backend worker", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "owner": app.state.core.ingestion.jobs.owner}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        core = app.state.core
        pipeline = core.ingestion.pipeline
        results = await gather_health(
            {"catalog": catalog_probe(core.catalog), "store": core.store.health()}, settings.ready_timeout_s
        )
        late = time.monotonic() - pipeline.last_heartbeat
        results["leases"] = (late < settings.ingest_lease_s * 2 / 3, f"renewed {late:.0f} s ago")
        ok = all(r[0] for r in results.values())
        body = {
            "status": "ready" if ok else "unavailable",
            "running": len(core.ingestion.jobs.running),
            "components": {n: {"ok": r[0], "detail": r[1]} for n, r in results.items()},
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(await asyncio.to_thread(generate_latest), media_type=CONTENT_TYPE_LATEST)

    return app
