"""Leaving no trace: resuming interrupted jobs at start, and removing a document's points, upload and row.

A document's points may outlive its job (a crash mid-write, a store outage during clean-up). They stay
hidden from queries while the row is not `ready`; everything here is safe to repeat, and the next start
repeats whatever a failure left undone.
"""

from __future__ import annotations

import logging
from typing import Any

from rag_backend.catalog import DocumentStatus
from rag_backend.ingestion.state import Jobs
from rag_backend.store import StoreError

log = logging.getLogger("rag_backend.ingestion")


async def resume(jobs: Jobs) -> None:
    """Requeues jobs a stop or crash interrupted, finishes interrupted deletions, drops points of failed jobs."""
    for doc in jobs.catalog.unfinished():
        if doc["status"] == DocumentStatus.DELETING:
            await purge(jobs, doc)
        elif jobs.upload_path(doc["id"]).exists():
            jobs.catalog.set_stage(
                doc["id"], DocumentStatus.QUEUED, progress=0, chunks_done=0,
                waiting_since=None, retry_reason=None, next_retry_at=None,
            )  # fmt: skip
            jobs.queue.put_nowait(doc["id"])
        else:
            jobs.catalog.fail(doc["id"], "interrupted by a restart and its upload is gone; upload it again")
    for doc in jobs.catalog.failed_with_points():
        await drop_points(jobs, doc["id"])


async def delete_points(jobs: Jobs, doc: dict[str, Any]) -> None:
    """Removes every point of the document from the store and records that; StoreError propagates."""
    coll = jobs.catalog.get_collection(doc["collection"])
    if coll and coll.space:
        await jobs.store.delete_document(coll.space, doc["collection"], doc["id"])
    jobs.catalog.set_fields(doc["id"], has_points=0)


async def drop_points(jobs: Jobs, doc_id: str) -> bool:
    """True once the document holds no points. On a store failure they stay hidden (has_points and not
    ready) and the next start cleans them up."""
    doc = jobs.catalog.get_document(doc_id)
    if not doc or not doc["has_points"]:
        return True
    try:
        await delete_points(jobs, doc)
    except StoreError as exc:
        log.warning("could not drop points of %s: %s", doc_id, exc)
        return False
    return True


async def purge(jobs: Jobs, doc: dict[str, Any]) -> None:
    """Points, upload and row of a document on its way out; if the store fails it stays `deleting` (hidden)
    and the next start tries again."""
    if await drop_points(jobs, doc["id"]):
        jobs.upload_path(doc["id"]).unlink(missing_ok=True)
        jobs.catalog.remove_document(doc["id"])
