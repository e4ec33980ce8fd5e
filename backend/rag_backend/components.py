"""The parts every backend process opens (the API and `rag-backend worker` alike), in order, and closes in reverse."""

from __future__ import annotations

import logging
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

    async def close(self) -> None:
        await self.ingestion.stop()
        await self.store.close()
        await self.upstream.close()
        self.catalog.close()


def open_core(settings: Settings, slots: int) -> Core:
    """`slots`: ingestion jobs this process runs at once (0: it only queues them)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = open_catalog(settings.database_url, settings.data_dir, settings.database_pool_size)
    store = open_store(
        qdrant_url=settings.qdrant_url,
        qdrant_api_key=settings.qdrant_api_key,
        data_dir=settings.data_dir,
        timeout_s=settings.qdrant_timeout_s,
        shard_number=settings.qdrant_shard_number,
        replication_factor=settings.qdrant_replication_factor,
        write_consistency_factor=settings.qdrant_write_consistency_factor,
    )
    upstream = Upstream(settings.ml_api_timeout_s, settings.ml_api_retries)
    embedder = make_embedder(settings, upstream)
    tokenizer = load_tokenizer(settings.chunk_tokenizer)
    if getattr(tokenizer, "name", "") == "approximate":
        log.warning("CHUNK_TOKENIZER %s not found: chunk sizes are approximate", settings.chunk_tokenizer)
    chunker = Chunker(tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens)
    lexical = Lexical()
    ingestion = Ingestion(settings, catalog, store, embedder, chunker, lexical, slots)
    return Core(settings, catalog, store, upstream, embedder, tokenizer, chunker, lexical, ingestion)
