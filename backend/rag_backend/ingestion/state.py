"""What the parts of ingestion share: the catalog, the store, the uploads waiting on disk, the job queue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from rag_backend.catalog import Catalog
from rag_backend.store import VectorStore


@dataclass(slots=True)
class Jobs:
    """One instance per backend; submission, recovery and the pipeline all act on it.

    Uploads wait under ``uploads/<document id>`` (never under the client's filename) until their job ends, so a
    restart can resume them. ``running`` lets a deletion wait for (or leave clean-up to) a job in flight.
    """

    catalog: Catalog
    store: VectorStore
    uploads: Path
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    running: dict[str, asyncio.Event] = field(default_factory=dict)  # document id -> set when its job has stopped

    def upload_path(self, doc_id: str) -> Path:
        return self.uploads / doc_id
