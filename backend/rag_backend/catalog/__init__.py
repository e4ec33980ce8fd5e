"""The catalog: collections, documents (ingestion jobs, their leases), their uploads and parsed texts.

Two implementations of one interface (`Catalog`): SQLite under DATA_DIR (the embedded default, one machine) and
PostgreSQL (`DATABASE_URL`: every API and worker process shares it). The SQL is shared (SQLAlchemy Core, portable
statements); what differs is how a job is claimed (`FOR UPDATE SKIP LOCKED` vs SQLite's single writer), the
database's clock and where uploads wait. The schema is migrated with Alembic when a catalog opens.
"""

from __future__ import annotations

from pathlib import Path

from rag_backend.catalog.base import (
    COLLECTION_NAME,
    FINAL,
    STAGES,
    Catalog,
    CatalogUnavailable,
    Collection,
    DocumentStatus,
)

__all__ = [
    "COLLECTION_NAME",
    "FINAL",
    "STAGES",
    "Catalog",
    "CatalogUnavailable",
    "Collection",
    "DocumentStatus",
    "open_catalog",
    "sqlite_paths",
]


def sqlite_paths(data_dir: Path) -> tuple[Path, Path]:
    """Where the embedded catalog keeps its database and its uploads, under DATA_DIR."""
    return data_dir / "catalog.sqlite3", data_dir / "uploads"


def open_catalog(database_url: str | None, data_dir: Path, pool_size: int = 5) -> Catalog:
    """PostgreSQL when a URL is given, else SQLite in DATA_DIR; migrated to the current schema either way."""
    if database_url:
        from rag_backend.catalog.postgres import PostgresCatalog

        return PostgresCatalog(database_url, pool_size)
    from rag_backend.catalog.sqlite import SqliteCatalog

    return SqliteCatalog(*sqlite_paths(data_dir))
