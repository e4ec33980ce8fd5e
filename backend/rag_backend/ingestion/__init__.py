"""Ingestion: uploads become indexed, published documents; one facade over the package's parts.

- `submission`: accept an upload (dedup, replacement, stored bytes), delete documents and collections;
- `pipeline`: the workers, parse → chunk → embed → upsert → publish, with `pump` batching embeddings
  across documents;
- `recovery`: resume interrupted jobs at start and remove a document's points, upload and row;
- `outages`: wait out a dependency's outage (backoff, one trial call at a time, a deadline) instead of failing;
- `state`: the catalog, store, uploads directory and queue they share.
"""

from __future__ import annotations

from typing import Any

from rag_backend.catalog import Catalog
from rag_backend.chunking import Chunker
from rag_backend.core.config import Settings
from rag_backend.embedding import Embedder
from rag_backend.ingestion.pipeline import Pipeline
from rag_backend.ingestion.recovery import resume
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
    ) -> None:
        uploads = settings.data_dir / "uploads"
        uploads.mkdir(parents=True, exist_ok=True)
        self.jobs = Jobs(catalog, store, uploads)
        self.submission = Submission(settings, self.jobs)
        self.pipeline = Pipeline(settings, self.jobs, embedder, chunker, lexical)

    async def start(self) -> None:
        """Recovery runs before any worker, so no job races the clean-up of its own previous run."""
        await resume(self.jobs)
        self.pipeline.start()

    async def stop(self) -> None:
        """Unfinished jobs stay in their stage; the next start resumes them from their upload."""
        await self.pipeline.stop()

    async def submit(
        self, collection: str, filename: str | None, data: bytes, content_type: str | None
    ) -> dict[str, Any]:
        return await self.submission.submit(collection, filename, data, content_type)

    def retry(self, doc_id: str) -> dict[str, Any]:
        return self.submission.retry(doc_id)

    async def delete_document(self, doc_id: str) -> dict[str, Any] | None:
        return await self.submission.delete_document(doc_id)

    async def delete_collection(self, name: str) -> None:
        await self.submission.delete_collection(name)
