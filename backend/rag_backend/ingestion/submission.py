"""What a client asks of ingestion: accept an upload (or recognise a duplicate), delete documents/collections.

An accepted upload is a queued catalog row with its bytes (one transaction); whichever process claims it runs the
job. Deletion hides a document at once and removes its points now, or leaves that to the process whose job holds
it, which notices at its next step and cleans up after its own writes. A collection's deletion hides it and its
documents at once and is a job of its own (see `recovery.purge_collection`), claimed like any other. An upload
replaces the failed and unfinished versions of the same file name at once (the ready one when it is published); a
failed document keeps its upload so that `retry` can run its job again without the client sending the file twice.
Every catalog call goes through `catalog.run` and the SHA-256 of an upload runs on the hashing pool: nothing here
blocks the event loop.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from rag_backend.catalog import Collection, DocumentStatus
from rag_backend.core import tracing
from rag_backend.core.config import Settings
from rag_backend.embedding import Embedder, space_for
from rag_backend.errors import Conflict, InvalidInput, NotFound, TooLarge, UnsupportedFormat
from rag_backend.ingestion.recovery import purge_now
from rag_backend.ingestion.state import Jobs
from rag_backend.parsing import UnsupportedFormat as UnreadableFormat
from rag_backend.parsing import detect_format
from rag_backend.pools import Pool

HASH_THREADS = 2  # SHA-256 of up to MAX_UPLOAD_MB (~0.1 s per 50 MB): a few uploads at once, never the loop


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def clean_filename(name: str | None) -> str:
    """Display name only (it never becomes a path): last path component, no control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    return base[:255] or "untitled"


class Submission:
    def __init__(self, settings: Settings, jobs: Jobs, embedder: Embedder) -> None:
        self.s, self.jobs, self.catalog, self.embedder = settings, jobs, jobs.catalog, embedder
        self.hashing = Pool("hash", HASH_THREADS)

    def close(self) -> None:
        self.hashing.close()

    async def create_collection(self, name: str, embed_model: str | None, *, existing_ok: bool = False) -> Collection:
        """A collection, bound to `embed_model` (a served embedder's name) when one is named: an unknown name is
        refused before anything is written. Without one, the first ingestion binds ml-api's default. An existing
        collection is a Conflict unless `existing_ok`; then a named model must be the one it is bound to."""
        identity = await self.embedder.identity(embed_model) if embed_model else None
        space = space_for(identity) if identity else None
        if identity and space:
            await self.jobs.store.ensure_space(space, identity.dim)  # first: a store outage leaves no half-made row
        coll, created = await self.catalog.run(self.catalog.create_collection, name)
        if coll.deleting:
            raise Conflict(f"collection '{name}' is being deleted; create it again once it is gone")
        if not created and not existing_ok:
            raise Conflict(f"collection '{name}' already exists")
        if identity and space:
            coll = await self.catalog.run(self.catalog.bind_collection, name, identity.key, space)
            if coll.embed_key != identity.key:
                raise Conflict(f"collection '{name}' is bound to embedding model {coll.embed_key}, not {identity.key}")
        return coll

    async def submit(
        self, collection: str, filename: str | None, data: bytes, content_type: str | None
    ) -> dict[str, Any]:
        """Validates one uploaded file and queues it; raises a DomainError with the reason if refused."""
        name = clean_filename(filename)
        if len(data) > self.s.max_upload_mb * 1024 * 1024:
            raise TooLarge(f"{name}: {len(data) / 1e6:.1f} MB is over the {self.s.max_upload_mb:g} MB limit")
        if not data:
            raise InvalidInput(f"{name}: the file is empty")
        try:
            fmt = detect_format(name, data[:8192], content_type)
        except UnreadableFormat as exc:
            raise UnsupportedFormat(f"{name}: {exc}") from None
        run = self.catalog.run
        coll, _ = await run(self.catalog.create_collection, collection)
        if coll.deleting:
            raise Conflict(f"collection '{collection}' is being deleted; upload again once it is gone")
        sha = await self.hashing.run(sha256_hex, data)  # hashlib releases the GIL: the loop goes on meanwhile
        if dup := await run(self.catalog.find_duplicate, collection, sha):
            return {**dup, "duplicate": True}
        doc = await run(self.catalog.add_document, collection, name, fmt, len(data), sha, data, tracing.traceparent())
        self.jobs.wake.set()
        for old in await run(self.catalog.retired, collection, name):
            await purge_now(self.jobs, old)
        return {**doc, "duplicate": False, "replaces": await run(self.catalog.replaced_by, doc)}

    async def retry(self, doc_id: str) -> dict[str, Any]:
        """Runs a failed document's job again from its stored upload."""
        run = self.catalog.run
        doc = await run(self.catalog.get_document, doc_id)
        if doc is None or doc["status"] == DocumentStatus.DELETING:
            raise NotFound(f"document {doc_id} not found")
        if doc["status"] != DocumentStatus.FAILED:
            raise Conflict(f"document {doc_id} is {doc['status']}: only a failed document can be retried")
        if not await run(self.catalog.has_upload, doc_id):
            raise Conflict(f"the upload of document {doc_id} is no longer stored: upload the file again")
        requeued = await run(self.catalog.requeue, doc_id)
        if requeued is None:  # its job is still cleaning up (it holds the lease), or it changed since the check above
            now = await run(self.catalog.get_document, doc_id)
            if now is not None and now["status"] == DocumentStatus.FAILED:
                raise Conflict(f"document {doc_id} is still finishing its failed job; retry in a moment")
            raise Conflict(f"document {doc_id} is no longer failed")
        self.jobs.wake.set()
        return requeued

    async def delete_document(self, doc_id: str) -> dict[str, Any] | None:
        doc = await self.catalog.run(self.catalog.mark_deleting, doc_id)
        if doc is None:
            return None
        await purge_now(self.jobs, doc)
        return doc

    async def delete_collection(self, name: str) -> bool:
        """Hides the collection and its documents now and queues its removal (a job: whichever process claims it
        drops the points, uploads and rows, surviving restarts). False if there is no such live collection."""
        if not await self.catalog.run(self.catalog.mark_collection_deleting, name):
            return False
        self.jobs.wake.set()
        return True
