"""Leaving no trace: removing a document's points, upload and row, whoever notices first.

A document's points may outlive its job (a crash mid-write, a store outage during clean-up). They stay hidden from
queries while the row is not `ready`, and the row stays claimable (`deleting`, or `failed` with points) until the
clean-up succeeds: whichever process claims it next finishes the work. Everything here is safe to repeat.

A collection on its way out is a job of the same kind: hidden at once, leased to whoever claims it, its points
removed in one store call once no job holds any of its documents, then its rows and uploads.
"""

from __future__ import annotations

import logging
from typing import Any

from rag_backend.catalog import Collection, DocumentStatus
from rag_backend.ingestion.state import Jobs
from rag_backend.store import StoreError

log = logging.getLogger("rag_backend.ingestion")
CLEANUP_RETRY_S = 30.0  # a clean-up that met a store outage is claimable again after this
HELD_RETRY_S = 1.0  # a collection whose documents some jobs still hold is claimable again after this


async def delete_points(jobs: Jobs, doc: dict[str, Any]) -> None:
    """Removes every point of the document from the store and records that; StoreError propagates."""
    run = jobs.catalog.run
    coll = await run(jobs.catalog.get_collection, doc["collection"], deleting=True)
    if coll and coll.space:
        await jobs.store.delete_document(coll.space, doc["collection"], doc["id"])
    await run(jobs.catalog.set_fields, doc["id"], has_points=0)


async def drop_points(jobs: Jobs, doc_id: str) -> bool:
    """True once the document holds no points. On a store failure they stay hidden (has_points and not ready)."""
    doc = await jobs.catalog.run(jobs.catalog.get_document, doc_id)
    if not doc or not doc["has_points"]:
        return True
    try:
        await delete_points(jobs, doc)
    except StoreError as exc:
        log.warning("could not drop points of %s: %s", doc_id, exc)
        return False
    return True


async def purge(jobs: Jobs, doc: dict[str, Any]) -> bool:
    """Points, upload and row of a document on its way out; False (it stays `deleting`, hidden) if the store
    failed."""
    if not await drop_points(jobs, doc["id"]):
        return False
    await jobs.catalog.run(jobs.catalog.remove_document, doc["id"])
    return True


async def settle(jobs: Jobs, doc: dict[str, Any]) -> None:
    """Finishes what a leased row that is not a job needs (a deletion, or a failed job's points), then gives it
    back: at once, or after CLEANUP_RETRY_S when the store failed."""
    if doc["status"] == DocumentStatus.DELETING:
        if await purge(jobs, doc):
            return  # the row is gone, and its lease with it
        done = False
    else:
        done = await drop_points(jobs, doc["id"])
    await jobs.catalog.run(jobs.catalog.release, doc["id"], jobs.owner, 0.0 if done else CLEANUP_RETRY_S)


async def purge_now(jobs: Jobs, doc: dict[str, Any]) -> None:
    """A deletion's clean-up right away, unless a job holds the row, this process's own included: the job notices
    the deletion at its next step and cleans up after its own writes (an upsert of it in flight, e.g. behind an
    embedding request, would otherwise land after the purge and leave points no row accounts for)."""
    if doc["id"] in jobs.running:
        return
    if await jobs.catalog.run(jobs.catalog.take, doc["id"], jobs.owner, jobs.lease_s):
        await settle(jobs, doc)


async def purge_collection(jobs: Jobs, coll: Collection) -> bool:
    """A deleting collection this process claimed: True once it is gone. While jobs still hold some of its
    documents (they notice at their next step and drop their own writes) it is given back for HELD_RETRY_S; after a
    store failure, for CLEANUP_RETRY_S. Its documents are not claimed one by one meanwhile: the store drops all of
    the collection's points in one call."""
    run, name = jobs.catalog.run, coll.name
    if await run(jobs.catalog.documents_held, name):
        await run(jobs.catalog.release_collection, name, jobs.owner, HELD_RETRY_S)
        return False
    if coll.space:
        try:
            await jobs.store.delete_collection(coll.space, name)
        except StoreError as exc:
            log.warning("could not drop the points of collection %s: %s", name, exc)
            await run(jobs.catalog.release_collection, name, jobs.owner, CLEANUP_RETRY_S)
            return False
    if not await run(jobs.catalog.drop_collection, name, jobs.owner):
        return False  # another process took it over meanwhile (this one's lease ran out): it finishes
    log.info("collection deleted", extra={"fields": {"collection": name}})
    return True
