"""Route plumbing every API family shares: admission, cancellation on disconnect, the orjson body, OpenAPI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import Request
from starlette.responses import Response

from ml_api.api.schemas import common as schemas
from ml_api.engine import Engine, Slot, Timing
from ml_api.errors import ClientGone, Overloaded

T = TypeVar("T")

ERROR_STATUSES = (400, 401, 413, 415, 422, 429, 500, 503)
WATCH_AFTER_S = 0.01  # work shorter than this runs unwatched; a client that leaves is noticed after it


def responses(ok: Any, family: str = "tei", extra: tuple[int, ...] = ()) -> dict[int | str, dict[str, Any]]:
    """OpenAPI docs for the 200 shape and each error in the family's body (`openai` under /v1/ and /v2/).

    The bodies themselves are written by orjson, not by these models.
    """
    error = schemas.OpenAIErrorBody if family == "openai" else schemas.ErrorBody
    return {200: {"model": ok}, **{code: {"model": error} for code in (*ERROR_STATUSES, *extra)}}


def timing_headers(timing: Timing) -> list[tuple[bytes, bytes]]:
    """TEI's timing headers, in milliseconds, so its clients and dashboards read ours unchanged."""
    return [
        (b"x-tokenization-time", b"%.2f" % (timing.tokenization_s * 1000)),
        (b"x-queue-time", b"%.2f" % (timing.batch.queue_s * 1000)),
        (b"x-inference-time", b"%.2f" % (timing.batch.inference_s * 1000)),
        (b"x-compute-tokens", b"%d" % timing.tokens),
    ]


class JSONBody(Response):
    """A JSON body already encoded, with its raw headers built once (no header mapping to encode again)."""

    media_type = "application/json"

    def __init__(self, body: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status_code, self.background, self.body = 200, None, body
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
            *(extra_headers or ()),
        ]


def json_response(content: Any, timing: Timing | None = None) -> Response:
    """orjson writes numpy arrays directly: no list-of-floats detour through pydantic for large matrices."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return JSONBody(body, timing_headers(timing) if timing else None)


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work` but cancel it (and so drop its queued items) as soon as the client goes away.

    The work runs in the request's own task. A watcher task, which cancels that task on the disconnect, starts
    only once the work has taken WATCH_AFTER_S: a short query is answered before then, and creating, running and
    cancelling a task would be a good part of what the server adds to it. A client leaving earlier is seen then.
    """
    this = asyncio.current_task()
    assert this is not None
    loop = asyncio.get_running_loop()
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        try:
            while (await request.receive())["type"] != "http.disconnect":
                pass
        finally:
            if not asyncio.current_task().cancelling():  # type: ignore[union-attr]  # ended by the client, not us
                gone = True
                this.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = loop.create_task(watch())

    timer = loop.call_later(WATCH_AFTER_S, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if gone and this.uncancel() == 0:
            raise ClientGone from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def guarded(request: Request, engine: Engine, work: Coroutine[Any, Any, T], model: Slot | None = None) -> T:
    """Admit (or refuse with Overloaded), run `work` while the client is there, always release the slot.

    `model` is the served model the work runs on: it also counts against that model's admission share.
    """
    try:
        engine.acquire(model)
    except Overloaded:
        work.close()  # never started: no "coroutine was never awaited" warning
        raise
    try:
        return await _unless_disconnected(request, work)
    finally:
        engine.release(model)
