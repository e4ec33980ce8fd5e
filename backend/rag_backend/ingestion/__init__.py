"""Ingestion: uploads become indexed, published documents; one facade over the package's parts.

- `submission`: accept an upload (dedup, replacement, stored bytes), delete documents, queue a collection's deletion;
- `pipeline`: the slots that claim jobs from the catalog (leases, heartbeat, takeover), parse → chunk → embed →
  upsert → publish, with `pump` batching embeddings across documents;
- `recovery`: remove a document's (or a deleted collection's) points, uploads and rows, whichever process gets there;
- `outages`: wait out a dependency's outage (backoff, one trial call at a time, a deadline) instead of failing;
- `state`: the catalog, store and process identity they share.

The API process runs INGEST_WORKERS slots (0: none); `rag-backend worker` runs ingestion alone.
"""

from __future__ import annotations

from typing import Any

from rag_backend.catalog import Catalog, Collection
from rag_backend.chunking import Chunker
from rag_backend.core.config import Settings
from rag_backend.embedding import Embedder
from rag_backend.ingestion.pipeline import Pipeline
from rag_backend.ingestion.state import Jobs
from rag_backend.ingestion.submission import Submission, clean_filename
from rag_backend.lexical import Lexical
from rag_backend.store import VectorStore

__all__ = ["Ingestion", "clean_filename"]


class Ingestion:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        store: VectorStore,
        embedder: Embedder,
        chunker: Chunker,
        lexical: Lexical,
        slots: int,
    ) -> None:
        self.jobs = Jobs(catalog, store, settings.ingest_lease_s)
        self.submission = Submission(settings, self.jobs, embedder)
        self.pipeline = Pipeline(settings, self.jobs, embedder, chunker, lexical, slots)

    async def start(self) -> None:
        """With the embedded store this process is the catalog's only user: what its previous run was doing is
        resumed at once. Elsewhere other processes may hold leases, which run out on their own."""
        if self.jobs.store.kind == "qdrant-edge":
            await self.jobs.catalog.run(self.jobs.catalog.release_all)
        self.pipeline.start()

    async def stop(self) -> None:
        """Unfinished jobs stay in their stage with their leases ended; the next claimer resumes them."""
        await self.pipeline.stop()
        self.submission.close()

    async def create_collection(self, name: str, embed_model: str | None, *, existing_ok: bool = False) -> Collection:
        return await self.submission.create_collection(name, embed_model, existing_ok=existing_ok)

    async def submit(
        self, collection: str, filename: str | None, data: bytes, content_type: str | None
    ) -> dict[str, Any]:
        return await self.submission.submit(collection, filename, data, content_type)

    async def retry(self, doc_id: str) -> dict[str, Any]:
        return await self.submission.retry(doc_id)

    async def delete_document(self, doc_id: str) -> dict[str, Any] | None:
        return await self.submission.delete_document(doc_id)

    async def delete_collection(self, name: str) -> bool:
        return await self.submission.delete_collection(name)
