"""App factory: every component opens once in the lifespan and closes in reverse order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from rag_backend import __version__
from rag_backend.answers import Answerer
from rag_backend.api.deps import Services
from rag_backend.api.errors import install_error_handlers
from rag_backend.api.middleware import GuardMiddleware
from rag_backend.api.responses import install as document_errors
from rag_backend.api.routes import router
from rag_backend.cache import open_cache
from rag_backend.catalog import Catalog
from rag_backend.chunking import Chunker, load_tokenizer
from rag_backend.core.config import Settings, get_settings
from rag_backend.core.runtime import setup_logging
from rag_backend.embedding import make_embedder
from rag_backend.ingestion import Ingestion
from rag_backend.lexical import Lexical
from rag_backend.llm import make_chain
from rag_backend.reranking import Reranker
from rag_backend.retrieval import Retriever
from rag_backend.store import open_store
from rag_backend.upstream import Upstream

log = logging.getLogger("rag_backend")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    setup_logging("backend", settings.log_level, settings.log_json, quiet=("httpx",))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        catalog = Catalog(settings.data_dir / "catalog.sqlite3")
        store = open_store(
            qdrant_url=settings.qdrant_url,
            qdrant_api_key=settings.qdrant_api_key,
            data_dir=settings.data_dir,
            timeout_s=settings.qdrant_timeout_s,
        )
        cache = open_cache(settings.redis_url, settings.cache_prefix, settings.cache_local_max_items)
        upstream = Upstream(settings.ml_api_timeout_s, settings.ml_api_retries)
        embedder = make_embedder(settings, upstream)
        reranker = Reranker(upstream, settings.rerank_api_url, settings.upstream_key)
        tokenizer = load_tokenizer(settings.chunk_tokenizer)
        if getattr(tokenizer, "name", "") == "approximate":
            log.warning("CHUNK_TOKENIZER %s not found: chunk sizes are approximate", settings.chunk_tokenizer)
        chunker = Chunker(tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens)
        lexical = Lexical()
        ingestion = Ingestion(settings, catalog, store, embedder, chunker, lexical)
        retriever = Retriever(settings, catalog, store, embedder, reranker, lexical, cache)
        llm_client = httpx.AsyncClient(limits=httpx.Limits(max_connections=32))  # streams; timeouts per call
        chain = make_chain(settings, llm_client)
        answerer = Answerer(settings, chain, cache, tokenizer)
        app.state.services = Services(
            settings, catalog, store, cache, upstream, embedder, reranker, chunker, ingestion, retriever, chain,
            answerer,
        )  # fmt: skip
        await ingestion.start()
        log.info("ready", extra={"fields": {"port": settings.backend_port, "store": store.kind, "cache": cache.kind}})
        try:
            yield
        finally:
            await ingestion.stop()
            await store.close()
            await cache.close()
            await upstream.close()
            await llm_client.aclose()
            catalog.close()
            log.info("stopped")

    app = FastAPIOffline(  # /docs with Swagger UI's assets served from the package, not a CDN
        title="rag-backend",
        version=__version__,
        lifespan=lifespan,
        description="Document ingestion, hybrid retrieval with rerank, caching.",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    install_error_handlers(app)
    app.include_router(router)
    document_errors(app)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        )
    max_body = int(settings.max_request_mb * 1024 * 1024)
    app.add_middleware(
        GuardMiddleware,
        api_key=settings.api_key,
        max_body_bytes=max_body,
        allowed_origins=settings.cors_allow_origins,
    )
    return app
