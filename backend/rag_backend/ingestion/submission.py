"""What a client asks of ingestion: accept an upload (or recognise a duplicate), delete documents/collections.

An accepted upload is a queued catalog row with its bytes (one transaction); whichever process claims it runs the
job. Deletion hides a document at once and removes its points now, or leaves that to the process whose job holds
it, which notices at its next step and cleans up after its own writes. An upload replaces the failed and unfinished
versions of the same file name at once (the ready one when it is published); a failed document keeps its upload so
that `retry` can run its job again without the client sending the file twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Any

from rag_backend.catalog import DocumentStatus
from rag_backend.core import tracing
from rag_backend.core.config import Settings
from rag_backend.errors import Conflict, InvalidInput, NotFound, TooLarge, UnsupportedFormat
from rag_backend.ingestion.recovery import purge_now
from rag_backend.ingestion.state import Jobs
from rag_backend.parsing import UnsupportedFormat as UnreadableFormat
from rag_backend.parsing import detect_format


def clean_filename(name: str | None) -> str:
    """Display name only (it never becomes a path): last path component, no control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip()
    return base[:255] or "untitled"


class Submission:
    def __init__(self, settings: Settings, jobs: Jobs) -> None:
        self.s, self.jobs, self.catalog = settings, jobs, jobs.catalog

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
        await run(self.catalog.create_collection, collection)
        sha = hashlib.sha256(data).hexdigest()
        if dup := await run(self.catalog.find_duplicate, collection, sha):
            return {**dup, "duplicate": True}
        doc = await run(self.catalog.add_document, collection, name, fmt, len(data), sha, data, tracing.traceparent())
        self.jobs.wake.set()
        for old in await run(self.catalog.retired, collection, name):
            await purge_now(self.jobs, old)
        return {**doc, "duplicate": False, "replaces": await run(self.catalog.replaced_by, doc)}

    def retry(self, doc_id: str) -> dict[str, Any]:
        """Runs a failed document's job again from its stored upload."""
        doc = self.catalog.get_document(doc_id)
        if doc is None or doc["status"] == DocumentStatus.DELETING:
            raise NotFound(f"document {doc_id} not found")
        if doc["status"] != DocumentStatus.FAILED:
            raise Conflict(f"document {doc_id} is {doc['status']}: only a failed document can be retried")
        if not self.catalog.has_upload(doc_id):
            raise Conflict(f"the upload of document {doc_id} is no longer stored: upload the file again")
        requeued = self.catalog.requeue(doc_id)
        if requeued is None:  # its job is still cleaning up (it holds the lease), or it changed since the check above
            now = self.catalog.get_document(doc_id)
            if now is not None and now["status"] == DocumentStatus.FAILED:
                raise Conflict(f"document {doc_id} is still finishing its failed job; retry in a moment")
            raise Conflict(f"document {doc_id} is no longer failed")
        self.jobs.wake.set()
        return requeued

    async def delete_document(self, doc_id: str) -> dict[str, Any] | None:
        doc = self.catalog.mark_deleting(doc_id)
        if doc is None:
            return None
        await purge_now(self.jobs, doc)
        return doc

    async def delete_collection(self, name: str) -> None:
        """Hides every document, waits for the processes whose jobs hold some of them to stop (they notice at
        their next step; a dead one's lease runs out), then drops the collection's points, uploads and rows."""
        coll = self.catalog.get_collection(name)
        if coll is None:
            return
        docs, _ = self.catalog.list_documents(name, None, 1_000_000, 0)
        for doc in docs:
            self.catalog.mark_deleting(doc["id"])
        waiting = [d["id"] for d in docs]
        until = time.monotonic() + self.s.parse_timeout_s + self.s.ingest_lease_s
        while waiting and time.monotonic() < until:
            waiting = [d for d in waiting if not self.catalog.take(d, self.jobs.owner, self.jobs.lease_s)]
            waiting = [d for d in waiting if self.catalog.get_document(d) is not None]
            if waiting:
                await asyncio.sleep(0.2)
        if coll.space:
            await self.jobs.store.delete_collection(coll.space, name)
        for doc in docs:
            self.catalog.drop_upload(doc["id"])
        self.catalog.delete_collection_rows(name)
