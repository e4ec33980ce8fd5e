"""The shared catalog: PostgreSQL (DATABASE_URL), reached by every API and worker process.

Claims lock the rows they take with FOR UPDATE SKIP LOCKED, so concurrent workers never wait on each other nor take
the same job. Uploads live in the `uploads` table, written in the same transaction as their row: any worker on any
machine can read them, any API replica can serve them back (GET /api/documents/{id}/content), no shared volume is
needed (a ReadWriteMany volume is what most clusters lack), and a row and its bytes appear and disappear together.
They are bounded: MAX_UPLOAD_MB per file, kept while their document exists (it is shown at the cited passage),
removed with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from rag_backend.catalog.base import Catalog, CatalogUnavailable, catalog_errors
from rag_backend.catalog.migrate import migrate


def engine_url(url: str) -> str:
    """postgresql://... (what users write) through the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class PostgresCatalog(Catalog):
    now_sql = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    claim_lock = "FOR UPDATE SKIP LOCKED"
    kind = "postgres"

    def __init__(self, url: str, pool_size: int = 5) -> None:
        engine = create_engine(
            engine_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,  # a restarted PostgreSQL costs one reconnect, not one failed request per connection
            pool_recycle=1800,
            connect_args={"connect_timeout": 5, "application_name": "rag-backend"},
        )
        super().__init__(engine, threads=pool_size)  # a thread per pooled connection: none waits for the other
        try:
            migrate(engine)
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            self.close()
            where = make_url(url).render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise CatalogUnavailable(f"cannot open the catalog at {where}: {reason}") from None

    @contextmanager
    def _single(self) -> Iterator[Connection]:
        """A single statement is atomic on its own: autocommit spares the BEGIN and COMMIT round trips."""
        with catalog_errors(), self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def _store_upload(self, conn: Connection, doc_id: str, data: bytes) -> None:
        conn.execute(text("INSERT INTO uploads(document_id, data) VALUES (:id, :data)"), {"id": doc_id, "data": data})

    def read_upload(self, doc_id: str) -> bytes | None:
        row = self._one("SELECT data FROM uploads WHERE document_id = :id", id=doc_id)
        return bytes(row["data"]) if row else None

    def has_upload(self, doc_id: str) -> bool:
        return self._one("SELECT 1 AS one FROM uploads WHERE document_id = :id", id=doc_id) is not None

    def drop_upload(self, doc_id: str) -> None:
        self._run("DELETE FROM uploads WHERE document_id = :id", id=doc_id)
