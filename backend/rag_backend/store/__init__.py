"""Vector store over Qdrant: in-process engine (qdrant-edge) or a Qdrant server, same behaviour.

`base` holds the contracts (points, payload, hits, filters, the `VectorStore` protocol, errors) and the
validation both engines share; `edge` and `server` are the two engines. Callers import from here.
"""

from __future__ import annotations

from pathlib import Path

from rag_backend.store.base import (
    ChunkPayload,
    ChunkPoint,
    DimensionMismatch,
    Hit,
    SearchFilter,
    SearchRequest,
    StoreError,
    VectorStore,
)
from rag_backend.store.edge import EdgeStore
from rag_backend.store.server import QdrantServerStore

__all__ = [
    "ChunkPayload",
    "ChunkPoint",
    "DimensionMismatch",
    "EdgeStore",
    "Hit",
    "QdrantServerStore",
    "SearchFilter",
    "SearchRequest",
    "StoreError",
    "VectorStore",
    "open_store",
]


def open_store(
    *,
    qdrant_url: str | None,
    qdrant_api_key: str | None,
    data_dir: str | Path,
    timeout_s: float = 10.0,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
) -> VectorStore:
    """A Qdrant server store when a URL is configured, else the embedded engine under ``<data_dir>/qdrant``.

    The cluster settings shape the collections a server store creates (None: the server's default); the embedded
    engine is one shard in one process and ignores them.
    """
    if qdrant_url:
        return QdrantServerStore.from_url(
            qdrant_url,
            api_key=qdrant_api_key,
            timeout=timeout_s,
            shard_number=shard_number,
            replication_factor=replication_factor,
            write_consistency_factor=write_consistency_factor,
        )
    return EdgeStore(Path(data_dir) / "qdrant")
