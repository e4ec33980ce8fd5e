"""The parts every backend process opens (the API and `rag-backend worker` alike), in order, and closes in reverse.

`open_core` is an async context manager over an AsyncExitStack: whatever was opened is closed on the way out, on a
normal stop and when opening fails half-way (a store that cannot open leaves no catalog connections behind).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from rag_backend.catalog import Catalog, open_catalog
from rag_backend.chunking import Chunker, TokenCounter, load_tokenizer
from rag_backend.core.config import Settings
from rag_backend.embedding import Embedder, make_embedder
from rag_backend.ingestion import Ingestion
from rag_backend.lexical import Lexical
from rag_backend.store import VectorStore, open_store
from rag_backend.upstream import Upstream

log = logging.getLogger("rag_backend")


@dataclass(slots=True)
class Core:
    settings: Settings
    catalog: Catalog
    store: VectorStore
    upstream: Upstream
    embedder: Embedder
    tokenizer: TokenCounter
    chunker: Chunker
    lexical: Lexical
    ingestion: Ingestion


@asynccontextmanager
async def open_core(settings: Settings, slots: int) -> AsyncIterator[Core]:
    """`slots`: ingestion jobs this process runs at once (0: it only queues them). The caller starts ingestion."""
    async with AsyncExitStack() as stack:
        yield await _open(stack, settings, slots)


async def _open(stack: AsyncExitStack, settings: Settings, slots: int) -> Core:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(settings.database_url, settings.data_dir, settings.database_pool_size)
    stack.callback(catalog.close)
    store = open_store(
        qdrant_url=settings.qdrant_url,
        qdrant_api_key=settings.qdrant_api_key,
        data_dir=settings.data_dir,
        timeout_s=settings.qdrant_timeout_s,
        shard_number=settings.qdrant_shard_number,
        replication_factor=settings.qdrant_replication_factor,
        write_consistency_factor=settings.qdrant_write_consistency_factor,
    )
    stack.push_async_callback(store.close)
    upstream = Upstream(settings.ml_api_timeout_s, settings.ml_api_retries)
    stack.push_async_callback(upstream.close)
    embedder = make_embedder(settings, upstream)
    tokenizer = load_tokenizer(settings.chunk_tokenizer)
    if getattr(tokenizer, "name", "") == "approximate":
        log.warning("CHUNK_TOKENIZER %s not found: chunk sizes are approximate", settings.chunk_tokenizer)
    chunker = Chunker(tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens)
    lexical = Lexical()
    ingestion = Ingestion(settings, catalog, store, embedder, chunker, lexical, slots)
    stack.push_async_callback(ingestion.stop)  # first out: no job runs while what it uses closes
    return Core(settings, catalog, store, upstream, embedder, tokenizer, chunker, lexical, ingestion)
