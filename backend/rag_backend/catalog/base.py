"""The catalog's one interface and its shared SQL (SQLAlchemy Core `text()`, portable to SQLite and PostgreSQL).

Qdrant holds vectors, Redis holds throw-away cache entries; what a user uploaded, its state, which embedding model a
collection was indexed with and who is working on which job must survive restarts and be shared by every process,
so it lives here.

Visibility: a document's points are searchable only while its row is `ready`. Queries exclude the ids of documents
that have points but are not ready (being indexed, replaced or deleted), and every change of that set bumps the
collection's version, which is part of every retrieval cache key.

Jobs and leases: a row that needs work (queued, interrupted in a stage, on its way out, failed with points left) is
*claimable* when nobody holds a live lease on it. A process claims rows by writing its owner id and a lease
deadline (the database's clock, so hosts' clocks never disagree), renews the leases of what it holds, and every
write a job makes is fenced by `lease_owner`: a process that lost its lease (it hung, or was partitioned away)
cannot move the job on, publish it or fail it. A process killed mid-job simply stops renewing; once the lease runs
out another claims the row and resumes it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc

from rag_backend.errors import UpstreamUnavailable
from rag_backend.pools import Pool


class DocumentStatus(StrEnum):
    """A document's (ingestion job's) state: the one list; the API schema and the page's types derive from it."""

    QUEUED = "queued"
    PARSING = "parsing"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    INDEXING = "indexing"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"


STAGES = tuple(DocumentStatus)[:5]
FINAL = (DocumentStatus.READY, DocumentStatus.FAILED)
_T = TypeVar("_T")
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CatalogUnavailable(UpstreamUnavailable):
    """The catalog database cannot be reached or is locked now: nothing was changed, the client may retry."""


def _sql_in(statuses: tuple[DocumentStatus, ...]) -> str:
    """A SQL list literal of statuses (enum values are fixed identifiers, never user input)."""
    return "(" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


_IN_STAGES = _sql_in(STAGES)
_IN_UNFINISHED = _sql_in((*STAGES, DocumentStatus.DELETING))
_IN_REPLACEABLE = _sql_in((*STAGES, DocumentStatus.FAILED))
_NOT_WAITING = "waiting_since = NULL, retry_reason = NULL, next_retry_at = NULL"
_NO_LEASE = "lease_owner = NULL, lease_until = NULL"
_WORK = f"(status IN {_IN_UNFINISHED} OR (status = '{DocumentStatus.FAILED.value}' AND has_points = 1))"
_COLUMNS = frozenset(
    "filename format size sha256 status progress chunks chunks_done chunks_sha pages title error has_points "
    "waiting_since retry_reason next_retry_at".split()
)


@dataclass(slots=True)
class Collection:
    name: str
    embed_key: str | None
    space: str | None
    version: int
    created_at: float
    deleting: int = 0  # hidden from every listing and query; its job removes points, uploads and rows
    lease_owner: str | None = None  # the process removing it (a deleting collection is a job, like a document)
    lease_until: float | None = None
    owner_id: str | None = None  # the user who created it (access control); None: admins only


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """Statuses as their values: a driver may adapt an Enum by its name (psycopg does)."""
    return {k: (v.value if isinstance(v, DocumentStatus) else v) for k, v in params.items()}


@contextmanager
def catalog_errors() -> Iterator[None]:
    """The driver's connection and lock failures, as the domain's CatalogUnavailable (a 503 at the HTTP edge)."""
    try:
        yield
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise CatalogUnavailable(f"catalog database: {reason}") from exc


def _in(column: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """` AND column IN (:in0, :in1, ...)` and its parameters (column is code, never input; values are bound)."""
    params = {f"in{i}": v for i, v in enumerate(values)}
    return f" AND {column} IN ({', '.join(':' + k for k in params)})", params


def _set_clause(fields: Mapping[str, Any]) -> str:
    unknown = set(fields) - _COLUMNS
    if unknown:  # column names are code, never input; this catches a typo before it becomes SQL
        raise ValueError(f"not document columns: {sorted(unknown)}")
    return "".join(f", {k} = :{k}" for k in fields)


class Catalog:
    """The shared SQL. Subclasses give the engine, the database clock, the claim's locking and upload storage.

    Calls are short single statements or small transactions, synchronous. Async code (every route, the ingestion
    slots, clean-up) calls them only through `run`, the one async facade: on the catalog's own bounded pool of
    threads, on both engines, so neither a PostgreSQL round trip nor a SQLite `BEGIN IMMEDIATE` waiting up to 5 s
    for another writer ever holds the event loop. Synchronous callers (the CLI, migrations) call them directly.
    """

    now_sql = ""  # the database clock as epoch seconds, in SQL
    claim_lock = ""  # what the claim's inner SELECT appends to skip rows other claimers hold
    kind = ""

    def __init__(self, engine: Engine, threads: int) -> None:
        self.engine = engine
        self.pool = Pool(f"catalog-{self.kind}", threads)

    def close(self) -> None:
        self.pool.close()
        self.engine.dispose()

    # -- plumbing -----------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One atomic unit of work; a database that cannot be reached or is locked is CatalogUnavailable."""
        with catalog_errors():
            with self.engine.begin() as conn:
                yield conn

    @contextmanager
    def _single(self) -> Iterator[Connection]:
        """Where one statement runs: a transaction of its own by default (a subclass may run it in autocommit)."""
        with self._tx() as conn:
            yield conn

    def _all(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self._single() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), _plain(params))]

    def _one(self, sql: str, **params: Any) -> dict[str, Any] | None:
        rows = self._all(sql, **params)
        return rows[0] if rows else None

    def _run(self, sql: str, **params: Any) -> int:
        with self._single() as conn:
            return conn.execute(text(sql), _plain(params)).rowcount

    async def run(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Calls one of this catalog's methods from async code, on the catalog's pool: the event loop keeps
        serving while the database answers (or a SQLite writer waits for the lock)."""
        return await self.pool.run(fn, *args, **kwargs)

    def ping(self) -> None:
        """Raises CatalogUnavailable unless the database answers (readiness)."""
        self._all("SELECT 1 AS one")

    # -- uploads, kept while their document exists (where is the implementation's choice) -------------
    def _store_upload(self, conn: Connection, doc_id: str, data: bytes) -> None:
        raise NotImplementedError

    def read_upload(self, doc_id: str) -> bytes | None:
        raise NotImplementedError

    def has_upload(self, doc_id: str) -> bool:
        raise NotImplementedError

    def drop_upload(self, doc_id: str) -> None:
        raise NotImplementedError

    # -- parsed texts: what chunk offsets index (the `texts` table, on both engines) -------------------
    def store_text(self, doc_id: str, owner: str, parsed: str) -> bool:
        """Keeps a job's parsed text, fenced like its other writes: False (nothing written) when the job was
        deleted or taken over meanwhile, so no text outlives its document. A lone surrogate is kept as "?" (one
        code point for one: offsets still hold)."""
        data = parsed.encode("utf-8", "replace")
        with self._tx() as conn:
            held = conn.execute(
                text(f"UPDATE documents SET updated_at = :now "
                     f"WHERE id = :id AND status IN {_IN_STAGES} AND lease_owner = :owner"),
                {"now": time.time(), "id": doc_id, "owner": owner},
            ).rowcount  # fmt: skip
            if held != 1:
                return False
            conn.execute(text("DELETE FROM texts WHERE document_id = :id"), {"id": doc_id})
            conn.execute(text("INSERT INTO texts(document_id, data) VALUES (:id, :data)"), {"id": doc_id, "data": data})
        return True

    def read_text(self, doc_id: str) -> bytes | None:
        """The parsed text as UTF-8, or None (not parsed yet, or indexed before texts were kept)."""
        row = self._one("SELECT data FROM texts WHERE document_id = :id", id=doc_id)
        return bytes(row["data"]) if row else None

    # -- collections --------------------------------------------------------------------------------
    def get_collection(self, name: str, deleting: bool = False) -> Collection | None:
        """A live collection; with `deleting`, one on its way out too (its clean-up needs its space)."""
        row = self._one("SELECT * FROM collections WHERE name = :name", name=name)
        return Collection(**row) if row and (deleting or not row["deleting"]) else None

    def live_collections(self, names: Sequence[str] | None = None) -> list[Collection]:
        """The live collections (by name), of `names` only when given: what a query may search."""
        if names is not None and not names:
            return []
        where, params = ("", {}) if names is None else _in("name", names)
        rows = self._all(f"SELECT * FROM collections WHERE deleting = 0{where} ORDER BY name", **params)
        return [Collection(**row) for row in rows]

    def create_collection(self, name: str) -> tuple[Collection, bool]:
        """Returns (collection, created).

        The version starts from the clock, not 0: a collection deleted and created again under the same name
        must not meet retrieval cache entries of its previous life (they carry the old versions)."""
        created = self._run(
            "INSERT INTO collections(name, version, created_at) VALUES (:name, :version, :now) "
            "ON CONFLICT (name) DO NOTHING",
            name=name, version=time.time_ns() // 1000, now=time.time(),
        )  # fmt: skip
        return self.get_collection(name, deleting=True), created == 1  # type: ignore[return-value]

    def bind_collection(self, name: str, embed_key: str, space: str) -> Collection:
        """Records the embedding model on first use; the caller compares it on every later use."""
        self._run(
            "UPDATE collections SET embed_key = :key, space = :space WHERE name = :name AND embed_key IS NULL",
            key=embed_key, space=space, name=name,
        )  # fmt: skip
        return self.get_collection(name, deleting=True)  # type: ignore[return-value]

    def list_collections(self) -> list[dict[str, Any]]:
        return self._all(
            """SELECT c.name, c.embed_key, c.space, c.version, c.created_at, COUNT(d.id) AS documents,
                      COALESCE(SUM(CASE WHEN d.status = :ready THEN d.chunks END), 0) AS chunks,
                      COALESCE(SUM(CASE WHEN d.status = :ready THEN 1 END), 0) AS ready,
                      COALESCE(SUM(CASE WHEN d.status = :failed THEN 1 END), 0) AS failed
               FROM collections c LEFT JOIN documents d ON d.collection = c.name AND d.status != :deleting
               WHERE c.deleting = 0
               GROUP BY c.name, c.embed_key, c.space, c.version, c.created_at ORDER BY c.name""",
            ready=DocumentStatus.READY, failed=DocumentStatus.FAILED, deleting=DocumentStatus.DELETING,
        )  # fmt: skip

    def mark_collection_deleting(self, name: str) -> bool:
        """Hides the collection and every document of it at once (listings, queries, uploads to it stop seeing it);
        its job removes the rest. False if there is no such live collection."""
        with self._tx() as conn:
            marked = conn.execute(
                text("UPDATE collections SET deleting = 1, version = version + 1 WHERE name = :n AND deleting = 0"),
                {"n": name},
            ).rowcount
            if marked:
                conn.execute(
                    text("UPDATE documents SET status = :deleting, updated_at = :now "
                         "WHERE collection = :n AND status != :deleting"),
                    {"deleting": DocumentStatus.DELETING.value, "now": time.time(), "n": name},
                )  # fmt: skip
        return marked == 1

    def claim_collection(self, owner: str, lease_s: float) -> Collection | None:
        """Takes one deleting collection that nobody holds, leased to `owner` (the oldest first)."""
        now = self.now_sql
        rows = self._all(
            f"""UPDATE collections SET lease_owner = :owner, lease_until = {now} + :lease
                WHERE name IN (SELECT name FROM collections
                               WHERE deleting = 1 AND (lease_until IS NULL OR lease_until < {now})
                               ORDER BY created_at LIMIT 1 {self.claim_lock})
                RETURNING *""",
            owner=owner, lease=lease_s,
        )  # fmt: skip
        return Collection(**rows[0]) if rows else None

    def documents_held(self, name: str) -> int:
        """Documents of a collection that a running job still holds (it stops at its next step and cleans up)."""
        row = self._one(
            f"""SELECT COUNT(*) AS n FROM documents WHERE collection = :n AND lease_owner IS NOT NULL
                AND lease_until >= {self.now_sql}""",
            n=name,
        )  # fmt: skip
        return int(row["n"]) if row else 0

    def release_collection(self, name: str, owner: str, retry_in_s: float = 0.0) -> None:
        until = f"{self.now_sql} + :retry" if retry_in_s > 0 else "NULL"
        self._run(
            f"UPDATE collections SET lease_owner = NULL, lease_until = {until} WHERE name = :n AND lease_owner = :o",
            n=name, o=owner, retry=retry_in_s,
        )  # fmt: skip

    def drop_collection(self, name: str, owner: str) -> bool:
        """The last step of a collection's deletion, once its points are gone: rows and uploads, fenced by the
        lease (False, nothing removed, if another process holds it now)."""
        with self._tx() as conn:
            fenced = conn.execute(
                text("UPDATE collections SET lease_until = lease_until WHERE name = :n AND lease_owner = :o"),
                {"n": name, "o": owner},
            ).rowcount
            if not fenced:
                return False
            ids = [r[0] for r in conn.execute(text("SELECT id FROM documents WHERE collection = :n"), {"n": name})]
            conn.execute(
                text("DELETE FROM texts WHERE document_id IN (SELECT id FROM documents WHERE collection = :n)"),
                {"n": name},
            )
            conn.execute(text("DELETE FROM documents WHERE collection = :n"), {"n": name})
            conn.execute(text("DELETE FROM collections WHERE name = :n"), {"n": name})
        for doc_id in ids:
            self.drop_upload(doc_id)
        return True

    @staticmethod
    def _bump(conn: Connection, name: str) -> None:
        conn.execute(text("UPDATE collections SET version = version + 1 WHERE name = :name"), {"name": name})

    # -- documents ----------------------------------------------------------------------------------
    def find_duplicate(self, collection: str, sha256: str) -> dict[str, Any] | None:
        """Same bytes already uploaded to this collection and not failed or on its way out."""
        return self._one(
            """SELECT * FROM documents WHERE collection = :c AND sha256 = :sha AND status NOT IN (:failed, :deleting)
               ORDER BY created_at DESC LIMIT 1""",
            c=collection, sha=sha256, failed=DocumentStatus.FAILED, deleting=DocumentStatus.DELETING,
        )  # fmt: skip

    def add_document(
        self,
        collection: str,
        filename: str,
        fmt: str,
        size: int,
        sha256: str,
        data: bytes,
        trace_parent: str | None = None,
    ) -> dict[str, Any]:
        """Inserts a queued document with its upload, in one transaction. Older uploads of the same name that are
        failed or still in flight are replaced at once (now `deleting`: see `retired`); a ready one is replaced
        when this one is published. `trace_parent`: the upload request's span, which the job's spans link to."""
        now = time.time()
        doc_id = str(uuid.uuid4())
        with self._tx() as conn:
            replaced = conn.execute(
                text(f"""UPDATE documents SET status = :deleting, updated_at = :now
                         WHERE collection = :c AND filename = :f AND status IN {_IN_REPLACEABLE}"""),
                {"deleting": DocumentStatus.DELETING.value, "now": now, "c": collection, "f": filename},
            ).rowcount
            if replaced:
                self._bump(conn, collection)
            conn.execute(
                text("""INSERT INTO documents(id, collection, filename, format, size, sha256, status, created_at,
                                              updated_at, trace_parent)
                        VALUES (:id, :c, :f, :fmt, :size, :sha, :queued, :now, :now, :tp)"""),
                {"id": doc_id, "c": collection, "f": filename, "fmt": fmt, "size": size, "sha": sha256,
                 "queued": DocumentStatus.QUEUED.value, "now": now, "tp": trace_parent},
            )  # fmt: skip
            self._store_upload(conn, doc_id, data)
        return self.get_document(doc_id)  # type: ignore[return-value]

    def retired(self, collection: str, filename: str) -> list[dict[str, Any]]:
        """Versions of a file on their way out (replaced or deleted), whose points, upload and row are to go."""
        return self._all(
            "SELECT * FROM documents WHERE collection = :c AND filename = :f AND status = :deleting",
            c=collection, f=filename, deleting=DocumentStatus.DELETING,
        )  # fmt: skip

    def requeue(self, doc_id: str) -> dict[str, Any] | None:
        """A failed document back to `queued` (its job runs again from the stored upload); None unless failed and
        no process still holds it (a failed job keeps its lease until it has cleaned up)."""
        done = self._run(
            f"""UPDATE documents SET status = :queued, progress = 0, chunks = 0, chunks_done = 0, chunks_sha = NULL,
                error = NULL, attempts = 0, {_NOT_WAITING}, updated_at = :now
                WHERE id = :id AND status = :failed AND (lease_owner IS NULL OR lease_until < {self.now_sql})""",
            queued=DocumentStatus.QUEUED, now=time.time(), id=doc_id, failed=DocumentStatus.FAILED,
        )  # fmt: skip
        return self.get_document(doc_id) if done == 1 else None

    def replaced_by(self, doc: dict[str, Any]) -> str | None:
        row = self._one(
            """SELECT id FROM documents WHERE collection = :c AND filename = :f AND status = :ready AND id != :id
               ORDER BY created_at DESC LIMIT 1""",
            c=doc["collection"], f=doc["filename"], ready=DocumentStatus.READY, id=doc["id"],
        )  # fmt: skip
        return row["id"] if row else None

    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM documents WHERE id = :id", id=doc_id)

    def list_documents(
        self,
        collection: str | None,
        status: str | None,
        limit: int,
        offset: int,
        among: frozenset[str] | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """`among`: only documents of these collections (the caller's readable ones; None = any)."""
        where, args = ["status != :deleting"], {"deleting": DocumentStatus.DELETING.value}
        if among is not None:
            names = sorted(among)
            where.append(
                "collection IN (" + ", ".join(f":in{n}" for n in range(len(names))) + ")" if names else "1 = 0"
            )
            args.update({f"in{n}": name for n, name in enumerate(names)})
        if collection:
            where.append("collection = :c")
            args["c"] = collection
        if status:
            where.append("status = :s")
            args["s"] = status
        clause = " AND ".join(where)
        total = self._one(f"SELECT COUNT(*) AS n FROM documents WHERE {clause}", **args)
        rows = self._all(
            f"SELECT * FROM documents WHERE {clause} ORDER BY created_at DESC LIMIT :limit OFFSET :offset",
            **args, limit=limit, offset=offset,
        )  # fmt: skip
        return rows, int(total["n"]) if total else 0

    def set_stage(self, doc_id: str, stage: str, owner: str, **fields: Any) -> bool:
        """Moves an in-flight job on; False when it was superseded, deleted or taken over meanwhile (it stops)."""
        sql = (
            f"UPDATE documents SET status = :stage, updated_at = :now{_set_clause(fields)} "
            f"WHERE id = :id AND status IN {_IN_STAGES} AND lease_owner = :owner"
        )
        return self._run(sql, **fields, stage=stage, now=time.time(), id=doc_id, owner=owner) == 1

    def set_fields(self, doc_id: str, **fields: Any) -> None:
        clause = _set_clause(fields)
        sql = f"UPDATE documents SET updated_at = :now{clause} WHERE id = :id"
        self._run(sql, **fields, now=time.time(), id=doc_id)

    def fail(self, doc_id: str, reason: str, owner: str) -> bool:
        """The job's final failure; its holder keeps the lease until it has dropped the job's points."""
        return self._run(
            f"""UPDATE documents SET status = :failed, error = :reason, {_NOT_WAITING}, updated_at = :now
                WHERE id = :id AND status IN {_IN_STAGES} AND lease_owner = :owner""",
            failed=DocumentStatus.FAILED, reason=reason[:2000], now=time.time(), id=doc_id, owner=owner,
        ) == 1  # fmt: skip

    def publish(self, doc_id: str, collection: str, owner: str) -> list[str] | None:
        """Atomically: this document becomes visible, its lease ends and older versions of the same file stop
        being visible. Returns the ids of the versions it replaced (now `deleting`), or None if the job was
        superseded or taken over."""
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(
                text(f"""UPDATE documents SET status = :ready, progress = 1, error = NULL, {_NOT_WAITING},
                         {_NO_LEASE}, updated_at = :now
                         WHERE id = :id AND status = :indexing AND lease_owner = :owner RETURNING filename"""),
                {"ready": DocumentStatus.READY.value, "now": now, "id": doc_id,
                 "indexing": DocumentStatus.INDEXING.value, "owner": owner},
            ).first()  # fmt: skip
            if row is None:
                return None
            retire = {"deleting": DocumentStatus.DELETING.value, "now": now, "c": collection, "f": row[0],
                      "ready": DocumentStatus.READY.value, "id": doc_id}  # fmt: skip
            old = [
                r[0]
                for r in conn.execute(
                    text("""UPDATE documents SET status = :deleting, updated_at = :now
                            WHERE collection = :c AND filename = :f AND status = :ready AND id != :id RETURNING id"""),
                    retire,
                )
            ]
            self._bump(conn, collection)
        return old

    def mark_deleting(self, doc_id: str) -> dict[str, Any] | None:
        """Hides the document at once (queries stop seeing it) before its points are removed. The row is read in
        the same transaction: a claimer may purge it the moment this commits, and the deletion still succeeded."""
        with self._tx() as conn:
            row = conn.execute(
                text("UPDATE documents SET status = :deleting, updated_at = :now "
                     "WHERE id = :id AND status != :deleting RETURNING *"),
                {"deleting": DocumentStatus.DELETING.value, "now": time.time(), "id": doc_id},
            ).first()  # fmt: skip
            if row is not None:
                self._bump(conn, row.collection)
            else:  # already on its way out, or unknown
                row = conn.execute(text("SELECT * FROM documents WHERE id = :id"), {"id": doc_id}).first()
        return dict(row._mapping) if row is not None else None

    def remove_document(self, doc_id: str) -> None:
        """The row and everything kept of the document: its parsed text, then its upload."""
        with self._tx() as conn:
            conn.execute(text("DELETE FROM texts WHERE document_id = :id"), {"id": doc_id})
            conn.execute(text("DELETE FROM documents WHERE id = :id"), {"id": doc_id})
        self.drop_upload(doc_id)

    def hidden_ids(self, *collections: str) -> list[str]:
        """Documents of these collections whose points exist but must not be searched (not ready)."""
        if not collections:
            return []
        where, params = _in("collection", collections)
        rows = self._all(
            f"SELECT id FROM documents WHERE has_points = 1 AND status != :ready{where}",
            ready=DocumentStatus.READY, **params,
        )  # fmt: skip
        return [r["id"] for r in rows]

    def counts_by_status(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in self._all("SELECT status, COUNT(*) AS n FROM documents GROUP BY status")}

    # -- jobs and leases ----------------------------------------------------------------------------
    def claim(self, owner: str, lease_s: float, limit: int) -> list[dict[str, Any]]:
        """Takes up to `limit` rows that need work and that nobody holds, oldest first, leased to `owner`."""
        now = self.now_sql
        return self._all(
            f"""UPDATE documents SET lease_owner = :owner, lease_until = {now} + :lease,
                       attempts = attempts + CASE WHEN status IN {_IN_STAGES} THEN 1 ELSE 0 END
                WHERE id IN (SELECT id FROM documents
                             WHERE {_WORK} AND (lease_until IS NULL OR lease_until < {now})
                             AND collection NOT IN (SELECT name FROM collections WHERE deleting = 1)
                             ORDER BY created_at LIMIT :limit {self.claim_lock})
                RETURNING *""",
            owner=owner, lease=lease_s, limit=limit,
        )  # fmt: skip

    def take(self, doc_id: str, owner: str, lease_s: float) -> bool:
        """Leases one row to `owner` unless another process holds it (a deletion purging inline takes it so)."""
        return self._run(
            f"""UPDATE documents SET lease_owner = :owner, lease_until = {self.now_sql} + :lease
                WHERE id = :id AND (lease_owner IS NULL OR lease_owner = :owner OR lease_until < {self.now_sql})""",
            owner=owner, lease=lease_s, id=doc_id,
        ) == 1  # fmt: skip

    def renew(self, owner: str, lease_s: float) -> dict[str, str]:
        """Extends every lease `owner` holds; returns {id: status} of the documents it still holds (the heartbeat)."""
        self._run(f"UPDATE collections SET lease_until = {self.now_sql} + :lease WHERE lease_owner = :owner",
                  owner=owner, lease=lease_s)  # fmt: skip
        rows = self._all(
            f"UPDATE documents SET lease_until = {self.now_sql} + :lease WHERE lease_owner = :owner "
            "RETURNING id, status",
            owner=owner, lease=lease_s,
        )  # fmt: skip
        return {r["id"]: r["status"] for r in rows}

    def release(self, doc_id: str, owner: str, retry_in_s: float = 0.0) -> None:
        """Gives a row back; with `retry_in_s`, nobody claims it before then (e.g. its purge met a store outage)."""
        until = f"{self.now_sql} + :retry" if retry_in_s > 0 else "NULL"
        self._run(
            f"UPDATE documents SET lease_owner = NULL, lease_until = {until} WHERE id = :id AND lease_owner = :owner",
            id=doc_id, owner=owner, retry=retry_in_s,
        )  # fmt: skip

    def release_all(self) -> int:
        """Every lease ends now: for a process that knows it is the catalog's only user (the embedded store is
        one process's), so that what its previous run left is resumed at once instead of after the lease."""
        # A deletion given back after a store failure is tried at once too: the new process may find the store back.
        self._run("UPDATE collections SET lease_owner = NULL, lease_until = NULL WHERE lease_until IS NOT NULL")
        return self._run("UPDATE documents SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
