"""The floor under `bench_latency.py`'s overhead: the least a Python HTTP server can do for `POST /embed`.

A bare ASGI app under the same uvicorn (uvloop, httptools) that does only what any such server must: read the
body, parse it with orjson, hand the text to one worker thread (tokenise, forward, normalise: the bench's
in-process reference, on the same model file with the same session options), and write the vector with orjson.
No framework, no validation, no batching, no metrics, no auth. `bench_latency.py --floor` measures it beside
ml-api in the same run, so the overhead of this floor says how much of ml-api's is the HTTP server, the client and
one thread hop on this machine, and how much is ml-api's own.

    uvicorn --app-dir ml-api/bench floor_app:app   (FLOOR_MODEL_DIR=<an embedder's directory>)
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from bench_latency import InProcess  # a sibling script, not a package

_model = InProcess(Path(os.environ["FLOOR_MODEL_DIR"]))
_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-inference")
_JSON = (b"content-type", b"application/json")


async def _answer(send: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [_JSON, *headers]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] != "POST":  # /health for the harness, /v1/models for the no-inference figure
        await _answer(send, b"{}", [])
        return
    started = time.perf_counter()
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    text = orjson.loads(b"".join(chunks))["inputs"]
    t0 = time.perf_counter()
    vector = await asyncio.get_running_loop().run_in_executor(_worker, _model.embed, text)
    inference_ms = (time.perf_counter() - t0) * 1000
    body = orjson.dumps([vector], option=orjson.OPT_SERIALIZE_NUMPY)
    total_ms = (time.perf_counter() - started) * 1000
    timing = [(b"x-tokenization-time", b"0"), (b"x-queue-time", b"0"), (b"x-inference-time", b"%.2f" % inference_ms)]
    await _answer(send, body, [*timing, (b"x-total-time", b"%.2f" % total_ms)])
