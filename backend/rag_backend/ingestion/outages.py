"""Waiting out dependency outages: a job never fails because ml-api, the embeddings API or the store was briefly away.

A transient failure (connection refused or reset, timeout, 429, 5xx, a store that cannot be reached or opened)
marks that dependency down. While it is down, jobs do not hammer it: one call at a time goes as a *trial* after a
capped exponential backoff with jitter, and everyone else waits for its outcome, so a restarting ml-api meets one
request instead of every job's. When a trial succeeds all waiters go at once. A document that has waited longer than
INGEST_RETRY_DEADLINE_S (continuously: any success resets it) ends `failed` with the last reason. Only the failed
call is repeated, never the job: batches already upserted stay.

The document's row says it is waiting (`waiting_since`, `retry_reason`, `next_retry_at`) while it keeps its stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rag_backend.catalog import STAGES, Catalog
from rag_backend.core.metrics import INGEST_DEPENDENCY_DOWN, INGEST_TRANSIENT_FAILURES
from rag_backend.errors import UpstreamUnavailable
from rag_backend.store import DimensionMismatch, StoreError

log = logging.getLogger("rag_backend.ingestion")
_T = TypeVar("_T")
CHECK_EVERY_S = 1.0  # how often a waiting job looks whether it was deleted, superseded or ran out of time


class JobCancelled(Exception):
    """The document was deleted or superseded while its job ran: the job cleans up after its own writes."""


class LeaseLost(Exception):
    """Another process holds the job now (this one hung or lost the catalog past its lease): stop, touch nothing."""


def stop_reason(doc: dict[str, Any] | None, owner: str) -> Exception | None:
    """None while the row is in a job's stage and leased to `owner`; else why its job must stop: another process
    holds it (LeaseLost: touch nothing) or it left its job (JobCancelled: clean up after its own writes)."""
    if doc is not None and doc["lease_owner"] != owner:
        return LeaseLost()
    if doc is None or doc["status"] not in STAGES:
        return JobCancelled()
    return None


class GaveUp(UpstreamUnavailable):
    """A dependency stayed unavailable for longer than the retry deadline: the job's final reason. Raised outside
    the retried call, so the Retrier never waits on it."""


def is_transient(exc: BaseException) -> bool:
    """What waiting can fix. A refusal of the input (4xx), a parse error or a dimension clash cannot."""
    if isinstance(exc, UpstreamUnavailable):
        return True
    return isinstance(exc, StoreError) and not isinstance(exc, DimensionMismatch)


def reason_of(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


class Outage:
    """One dependency as the jobs see it: up, or down since a moment with a scheduled trial call."""

    def __init__(self, name: str, initial_s: float, max_s: float, metric: str | None = None) -> None:
        self.name, self.initial_s, self.max_s = name, initial_s, max_s
        self.metric = metric or name  # the dependency label of the rag_ingest_* metrics: short and stable
        self.down_since: float | None = None  # monotonic
        self.failures = 0
        self.reason = ""
        self.next_try = 0.0  # monotonic
        self.trial_running = False
        self._changed = asyncio.Event()

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def next_try_wall(self) -> float:
        return time.time() + max(0.0, self.next_try - time.monotonic())

    def _backoff(self) -> float:
        return min(self.max_s, self.initial_s * 2 ** (self.failures - 1)) * random.uniform(0.5, 1.0)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def turn(self, within_s: float) -> bool | None:
        """Waits until a call may go: False (no outage), True (this call is the trial) or None (timed out)."""
        until = time.monotonic() + within_s
        while True:
            if not self.down:
                return False
            now = time.monotonic()
            if not self.trial_running and now >= self.next_try:
                self.trial_running = True
                return True
            wait = until - now if self.trial_running else min(until, self.next_try) - now
            if wait <= 0:
                return None
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)

    def succeeded(self, trial: bool) -> None:
        if trial:
            self.trial_running = False
        if self.down_since is not None:
            log.info(
                "dependency is back",
                extra={"fields": {"dependency": self.name, "down_s": round(time.monotonic() - self.down_since, 1)}},
            )
            self.down_since, self.failures, self.reason = None, 0, ""
            INGEST_DEPENDENCY_DOWN.labels(self.metric).set(0)
        self._notify()

    def failed(self, exc: BaseException, trial: bool) -> None:
        """A call failed transiently; the first failure or a failed trial schedules the next trial."""
        self.reason = reason_of(exc)
        INGEST_TRANSIENT_FAILURES.labels(self.metric).inc()
        if trial:
            self.trial_running = False
        if self.down_since is None:
            self.down_since, self.failures = time.monotonic(), 1
            INGEST_DEPENDENCY_DOWN.labels(self.metric).set(1)
            log.warning("dependency unavailable", extra={"fields": {"dependency": self.name, "reason": self.reason}})
        elif trial:
            self.failures += 1
        else:  # a call that was already in flight when the outage began: the schedule stands
            return
        self.next_try = time.monotonic() + self._backoff()
        self._notify()

    def abandon(self, trial: bool) -> None:
        """The call ended without saying anything about the dependency (cancelled, or the input's own fault)."""
        if trial:
            self.trial_running = False
            self._notify()


class Retrier:
    """Runs one call of a job through an `Outage`, recording on the document's row that (and why) it waits."""

    def __init__(self, catalog: Catalog, deadline_s: float, owner: str) -> None:
        self.catalog, self.deadline_s, self.owner = catalog, deadline_s, owner

    async def call(self, doc_id: str, outage: Outage, fn: Callable[[], Awaitable[_T]]) -> _T:
        while True:
            trial = await self._admit(doc_id, outage)
            try:
                result = await fn()
            except BaseException as exc:
                if not is_transient(exc):
                    outage.abandon(trial)
                    raise
                outage.failed(exc, trial)
                await self._waiting(doc_id, outage, reason_of(exc))
                continue
            outage.succeeded(trial)
            await self._resumed(doc_id)
            return result

    async def _admit(self, doc_id: str, outage: Outage) -> bool:
        while True:
            trial = await outage.turn(CHECK_EVERY_S)
            if trial is not None:
                return trial
            await self._waiting(doc_id, outage, outage.reason)

    async def _waiting(self, doc_id: str, outage: Outage, reason: str) -> None:
        """Records the wait; raises JobCancelled if the document left its job, LeaseLost if another process took
        it, GaveUp past the deadline."""
        doc = await self.catalog.run(self.catalog.get_document, doc_id)
        if (stop := stop_reason(doc, self.owner)) is not None:
            raise stop
        assert doc is not None
        now = time.time()
        since = doc["waiting_since"] or now
        if now - since >= self.deadline_s:
            raise GaveUp(f"gave up after {now - since:.0f} s waiting for {outage.name}: {reason}")
        # While a trial runs its time is past: the row keeps the time it announced instead of changing every second.
        keep = outage.trial_running and doc["next_retry_at"] is not None
        next_at = doc["next_retry_at"] if keep else round(outage.next_try_wall(), 1)
        if doc["waiting_since"] != since or doc["retry_reason"] != reason or doc["next_retry_at"] != next_at:
            fields = {"waiting_since": since, "retry_reason": reason, "next_retry_at": next_at}
            await self.catalog.run(self.catalog.set_fields, doc_id, **fields)

    async def _resumed(self, doc_id: str) -> None:
        doc = await self.catalog.run(self.catalog.get_document, doc_id)
        if doc is not None and doc["waiting_since"] is not None:
            fields = {"waiting_since": None, "retry_reason": None, "next_retry_at": None}
            await self.catalog.run(self.catalog.set_fields, doc_id, **fields)
