"""What the parts of ingestion share: the catalog (rows, leases, uploads), the store, this process's identity."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass, field

from rag_backend.catalog import Catalog
from rag_backend.store import VectorStore


def process_owner() -> str:
    """host:pid:nonce — unique per process start, and it says which process holds a lease (logs, tests)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(slots=True)
class Jobs:
    """One instance per process; submission, clean-up and the pipeline all act on it.

    Every job this process works on is leased to `owner` in the catalog (see rag_backend.catalog.base); `running`
    is that set, `lost` the part of it whose lease the heartbeat found gone (another process holds it now: the job
    stops without touching anything). `wake` is set when this process queued work, so its own pipeline does not
    wait for the next poll.
    """

    catalog: Catalog
    store: VectorStore
    lease_s: float = 30.0
    owner: str = field(default_factory=process_owner)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    running: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
