"""App factory: every component opens once in the lifespan and closes in reverse order (an AsyncExitStack, so a
failure half-way through startup closes what was already opened)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from rag_backend import __version__
from rag_backend.access.oidc import Oidc
from rag_backend.access.service import AccessService
from rag_backend.answers import Answerer
from rag_backend.api.deps import Services
from rag_backend.api.errors import install_error_handlers
from rag_backend.api.middleware import GuardMiddleware
from rag_backend.api.responses import install as document_errors
from rag_backend.api.routes import router
from rag_backend.cache import open_cache
from rag_backend.components import open_core
from rag_backend.conversations import Conversations
from rag_backend.core import tracing
from rag_backend.core.config import Settings, get_settings
from rag_backend.core.runtime import setup_logging
from rag_backend.llm import make_chain
from rag_backend.redaction import Sensitive
from rag_backend.reranking import Reranker
from rag_backend.retrieval import Retriever

log = logging.getLogger("rag_backend")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    setup_logging("backend", settings.log_level, settings.log_json, quiet=("httpx",))
    if tracing.setup("backend"):
        tracing.instrument_httpx()  # every call to ml-api and the LLM providers carries the request's traceparent

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each part is closed by the stack, in reverse, on a normal stop and when a later part fails to open.
        async with AsyncExitStack() as stack:
            stack.callback(tracing.shutdown)  # last out: the spans of the stop are exported too
            core = await stack.enter_async_context(open_core(settings, settings.ingest_workers))
            cache = open_cache(settings.redis_url, settings.cache_prefix, settings.cache_local_max_items)
            stack.push_async_callback(cache.close)
            reranker = Reranker(
                core.upstream, settings.rerank_api_url, settings.upstream_key, settings.query_rerank_model or None
            )
            retriever = Retriever(settings, core.catalog, core.store, core.embedder, reranker, core.lexical, cache)
            llm_client = httpx.AsyncClient(limits=httpx.Limits(max_connections=32))  # streams; timeouts per call
            stack.push_async_callback(llm_client.aclose)
            chain = make_chain(settings, llm_client)
            answerer = Answerer(settings, chain, cache, core.tokenizer)
            access = AccessService(settings, core.catalog)
            stack.callback(access.close)
            await access.bootstrap_admin()
            app.state.services = Services(
                settings, core.catalog, core.store, cache, core.upstream, core.embedder, reranker, core.chunker,
                core.ingestion, retriever, chain, answerer, access, Conversations(settings, core.catalog, chain),
            )  # fmt: skip
            app.state.oidc = Oidc(settings, access) if settings.oidc_enabled else None
            await core.ingestion.start()
            fields = {
                "port": settings.backend_port, "store": core.store.kind, "cache": cache.kind,
                "catalog": core.catalog.kind, "ingest_slots": settings.ingest_workers,
            }  # fmt: skip
            log.info("ready", extra={"fields": fields})
            yield
        log.info("stopped")

    app = FastAPIOffline(  # /docs with Swagger UI's assets served from the package, not a CDN
        title="rag-backend",
        version=__version__,
        lifespan=lifespan,
        description="Document ingestion, hybrid retrieval with rerank, caching.",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    app.state.sensitive = Sensitive.of(settings)  # what every error a caller sees leaves out
    install_error_handlers(app)
    app.include_router(router)
    document_errors(app)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            # The sign-in cookie, for the origins listed; never with `*`, which would let any site read a signed-in
            # user's answers (Starlette echoes the caller's origin when credentials are allowed).
            allow_credentials="*" not in settings.cors_allow_origins,
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )
    max_body = int(settings.max_request_mb * 1024 * 1024)
    app.add_middleware(
        GuardMiddleware,
        api_key=settings.api_key,
        max_body_bytes=max_body,
        allowed_origins=settings.cors_allow_origins,
        users=settings.auth_mode == "users",
    )
    tracing.instrument_app(app)  # outermost (no-op when off): the request's span covers the guard's answers too
    return app
