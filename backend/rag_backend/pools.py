"""Bounded thread pools, one per kind of blocking work: catalog, parsing, hashing, the embedded store.

The event loop runs none of it. Each kind has its own pool so that one cannot starve another (a 120 s parse must
not hold the thread a query's catalog read waits for), and asyncio's default executor serves nothing long (only
what libraries put there themselves: DNS lookups, Starlette's spooled-file reads).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

_T = TypeVar("_T")


class Pool:
    """A named, bounded ThreadPoolExecutor that async code awaits; its threads are named after it (py-spy, logs)."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, max(1, size)
        self._executor = ThreadPoolExecutor(self.size, thread_name_prefix=f"rag-{name}")

    async def run(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Waits for the calls already running (a catalog write finishes before the engine is disposed)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
