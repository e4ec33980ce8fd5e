"""A TEST STAND-IN for a Qdrant server: the part of Qdrant's REST API the backend uses, served by one process
over qdrant-client's local mode, so that several backend processes (an API and its workers) share one vector
store on machines where no Qdrant server can run. Dev only, like the rest of devharness; never deploy it.

What it proves: the backend's server store (``QdrantServerStore`` over ``AsyncQdrantClient`` with a URL, REST)
works through real HTTP as qdrant-client speaks it (routes, request bodies, the ``{"result", "status", "time"}``
envelope, 404 for a missing collection, 409 for a lost creation race), and separate processes see one another's
writes. It records every create-collection request so a test can check what the backend asked for.

What it does not prove: anything about a real Qdrant server or cluster. Underneath is local mode (brute-force
search, no HNSW, payload indexes without effect). ``shard_number``, ``replication_factor`` and
``write_consistency_factor`` are recorded and echoed back in the collection's info, nothing more: there is no
sharding, replication, write or read consistency, write ordering or failover here. Requests are executed one at a
time (local mode is not safe for concurrent callers), so neither Qdrant's concurrency nor its speed is measured:
a benchmark through the stand-in reports ``busy_s`` (GET /_standin/stats) to show how much of its time the store
took.

Run: ``python -m devharness.qdrant_standin --port 6333 [--path DIR] [--record FILE] [--api-key KEY]``
(no ``--path``: in memory). Needs qdrant-client, Starlette and uvicorn (backend/.venv); imported lazily, so
devharness itself imports without them.

Served (Qdrant's routes): ``GET /``, ``/healthz``, ``/livez``, ``/readyz``; ``GET /collections``;
``GET|PUT|DELETE /collections/{name}``; ``GET /collections/{name}/exists``; ``PUT /collections/{name}/index``;
``PUT /collections/{name}/points`` (upsert); ``POST /collections/{name}/points/delete``, ``.../points/count``,
``.../points/query/batch``. Any other route answers 501, so a gap shows up as a failure rather than as the 404 a
client would read as a missing collection. Its own: ``GET /_standin/requests`` (every create-collection request:
collection, body, query parameters) and ``GET /_standin/stats`` (requests per route, busy seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from devharness.processes import Service, free_port, spawn, wait_healthy

if TYPE_CHECKING:
    from qdrant_client import QdrantClient
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

T = TypeVar("T")

CLUSTER_PARAMS = ("shard_number", "replication_factor", "write_consistency_factor")
HEALTH_ROUTES = {"/healthz": "healthz check passed", "/livez": "livez check passed", "/readyz": "all shards are ready"}
# Local mode's advice for its own users; expected here, and noise in a service log.
QUIET_WARNINGS = ("Payload indexes have no effect", "Local mode is not recommended")


class Refused(Exception):
    """An error answer in Qdrant's shape: HTTP status and ``{"status": {"error": message}}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Engine:
    """qdrant-client's local mode behind one lock: a single worker thread runs every call, one at a time (local
    mode is not safe for concurrent callers, and its SQLite file in ``path`` mode belongs to the thread that
    opened it). The event loop stays free for health checks meanwhile."""

    def __init__(self, location: str | None) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-local")
        self.client: QdrantClient = self._thread.submit(self._open, location).result()
        self.busy_s = 0.0

    @staticmethod
    def _open(location: str | None) -> QdrantClient:
        from qdrant_client import QdrantClient

        return QdrantClient(location=":memory:") if location is None else QdrantClient(path=location)

    def _timed(self, fn: Callable[[QdrantClient], T]) -> T:
        started = time.perf_counter()
        try:
            return fn(self.client)
        finally:
            self.busy_s += time.perf_counter() - started

    async def run(self, fn: Callable[[QdrantClient], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._timed, fn)

    def close(self) -> None:
        self._thread.submit(self.client.close).result()
        self._thread.shutdown(wait=True)


class StandIn:
    """The routes over one ``Engine``, plus what tests inspect: create requests and per-route counts."""

    def __init__(self, location: str | None = None, *, record: Path | None = None, api_key: str | None = None) -> None:
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        self.location = location
        self.engine = Engine(location)
        self.api_key = api_key
        self.record = record
        self.created: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.cluster: dict[str, dict[str, int]] = {}  # collection -> the cluster settings it was created with
        self.started = time.monotonic()

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _denied(self, request: Request) -> Refused | None:
        """Qdrant's API-key check (health routes are open there too)."""
        if self.api_key is None:
            return None
        given = request.headers.get("api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:]
        if given is None:
            return Refused(401, "Must provide an API key or an Authorization bearer token")
        return None if given == self.api_key else Refused(403, "Invalid API key or JWT")

    def endpoint(self, name: str, fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        """Runs ``fn`` and answers in Qdrant's envelope; local mode's errors become Qdrant's statuses."""
        from pydantic import ValidationError
        from pydantic_core import to_jsonable_python
        from starlette.responses import JSONResponse

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            self.counts[name] += 1
            collection = request.path_params.get("name", "")
            try:
                if denied := self._denied(request):
                    raise denied
                result = await fn(request)
            except Refused as exc:
                status, message = exc.status, exc.message
            except ValidationError as exc:  # a ValueError too: first
                status, message = 400, f"Format error in JSON body: {exc}"
            except ValueError as exc:
                text = str(exc)
                if text == f"Collection {collection} not found":
                    status, message = 404, f"Not found: Collection `{collection}` doesn't exist!"
                elif text == f"Collection {collection} already exists":
                    status, message = 409, f"Wrong input: Collection `{collection}` already exists!"
                else:
                    status, message = 400, f"Wrong input: {text}"
            except Exception as exc:
                status, message = 500, f"Service internal error: {type(exc).__name__}: {exc}"
            else:
                body = {
                    "result": to_jsonable_python(result, by_alias=True, exclude_none=True),
                    "status": "ok",
                    "time": time.perf_counter() - started,
                }
                return JSONResponse(body)
            return JSONResponse({"status": {"error": message}, "time": time.perf_counter() - started}, status)

        return handle

    @staticmethod
    async def _body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else {}
        except ValueError as exc:
            raise Refused(400, f"Format error in JSON body: {exc}") from None

    # -- Qdrant's routes ---------------------------------------------------------------------------------------

    async def list_collections(self, request: Request) -> Any:
        return await self.engine.run(lambda c: c.get_collections())

    async def get_collection(self, request: Request) -> Any:
        name = request.path_params["name"]
        info = await self.engine.run(lambda c: c.get_collection(name))
        params = info.config.params.model_copy(update=self.cluster.get(name, {}))
        return info.model_copy(update={"config": info.config.model_copy(update={"params": params})})

    async def collection_exists(self, request: Request) -> Any:
        from qdrant_client import models

        name = request.path_params["name"]
        return models.CollectionExistence(exists=await self.engine.run(lambda c: c.collection_exists(name)))

    async def create_collection(self, request: Request) -> Any:
        from qdrant_client import models

        name = request.path_params["name"]
        try:
            data = await self._body(request)
        except Refused:  # recorded too, as the text that came
            self._record(name, (await request.body()).decode(errors="replace"), request)
            raise
        self._record(name, data, request)
        req = models.CreateCollection.model_validate(data)
        created = await self.engine.run(
            lambda c: c.create_collection(
                name, vectors_config=req.vectors, sparse_vectors_config=req.sparse_vectors, metadata=req.metadata
            )
        )
        self.cluster[name] = {k: v for k in CLUSTER_PARAMS if (v := getattr(req, k)) is not None}
        return created

    def _record(self, collection: str, body: Any, request: Request) -> None:
        entry = {"collection": collection, "body": body, "query": dict(request.query_params)}
        self.created.append(entry)
        if self.record is not None:
            with self.record.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    async def delete_collection(self, request: Request) -> Any:
        name = request.path_params["name"]
        deleted = await self.engine.run(lambda c: c.delete_collection(name))
        self.cluster.pop(name, None)
        return deleted

    async def create_index(self, request: Request) -> Any:
        from qdrant_client import models

        name = request.path_params["name"]
        req = models.CreateFieldIndex.model_validate(await self._body(request))
        return await self.engine.run(
            lambda c: c.create_payload_index(name, field_name=req.field_name, field_schema=req.field_schema)
        )

    async def upsert(self, request: Request) -> Any:
        from pydantic import TypeAdapter
        from qdrant_client import models

        name = request.path_params["name"]
        ops = TypeAdapter(models.PointInsertOperations).validate_python(await self._body(request))
        points = ops.points if isinstance(ops, models.PointsList) else ops.batch
        return await self.engine.run(
            lambda c: c.upsert(name, points=points, update_filter=ops.update_filter, update_mode=ops.update_mode)
        )

    async def delete_points(self, request: Request) -> Any:
        from pydantic import TypeAdapter
        from qdrant_client import models

        name = request.path_params["name"]
        selector = TypeAdapter(models.PointsSelector).validate_python(await self._body(request))
        return await self.engine.run(lambda c: c.delete(name, points_selector=selector))

    async def count(self, request: Request) -> Any:
        from qdrant_client import models

        name = request.path_params["name"]
        req = models.CountRequest.model_validate(await self._body(request))
        exact = True if req.exact is None else req.exact
        return await self.engine.run(lambda c: c.count(name, count_filter=req.filter, exact=exact))

    async def query_batch(self, request: Request) -> Any:
        from qdrant_client import models

        name = request.path_params["name"]
        req = models.QueryRequestBatch.model_validate(await self._body(request))
        return await self.engine.run(lambda c: c.query_batch_points(name, requests=req.searches))

    async def unsupported(self, request: Request) -> Any:
        raise Refused(501, f"the Qdrant stand-in does not serve {request.method} {request.url.path}")

    # -- the app -----------------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse, PlainTextResponse
        from starlette.routing import Route

        async def root(request: Request) -> Response:
            from importlib.metadata import version  # a server of the client's own version passes its check

            title = "qdrant - vector search engine (test stand-in)"
            return JSONResponse({"title": title, "version": version("qdrant-client")})

        def health(text: str) -> Callable[[Request], Awaitable[Response]]:
            async def answer(request: Request) -> Response:
                return PlainTextResponse(text)

            return answer

        async def created(request: Request) -> Response:
            return JSONResponse({"create_collection": self.created})

        async def stats(request: Request) -> Response:
            return JSONResponse(
                {
                    "requests": dict(self.counts),
                    "busy_s": round(self.engine.busy_s, 6),
                    "uptime_s": round(time.monotonic() - self.started, 3),
                }
            )

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            where = "in memory" if self.location is None else f"storage {self.location}"
            print(f"qdrant stand-in (a test double, not Qdrant) started, {where}", flush=True)
            try:
                yield
            finally:
                self.engine.close()
                print("qdrant stand-in stopped", flush=True)

        c = "/collections/{name}"
        e = self.endpoint
        all_methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        routes = [
            Route("/", root, methods=["GET"]),
            *(Route(path, health(text), methods=["GET"]) for path, text in HEALTH_ROUTES.items()),
            Route("/_standin/requests", created, methods=["GET"]),
            Route("/_standin/stats", stats, methods=["GET"]),
            Route("/collections", e("get_collections", self.list_collections), methods=["GET"]),
            Route(c, e("get_collection", self.get_collection), methods=["GET"]),
            Route(c, e("create_collection", self.create_collection), methods=["PUT"]),
            Route(c, e("delete_collection", self.delete_collection), methods=["DELETE"]),
            Route(c + "/exists", e("collection_exists", self.collection_exists), methods=["GET"]),
            Route(c + "/index", e("create_field_index", self.create_index), methods=["PUT"]),
            Route(c + "/points", e("upsert_points", self.upsert), methods=["PUT"]),
            Route(c + "/points/delete", e("delete_points", self.delete_points), methods=["POST"]),
            Route(c + "/points/count", e("count_points", self.count), methods=["POST"]),
            Route(c + "/points/query/batch", e("query_batch_points", self.query_batch), methods=["POST"]),
            Route("/{path:path}", e("unsupported", self.unsupported), methods=all_methods),
        ]
        return Starlette(routes=routes, lifespan=lifespan)


def build_app(location: str | None = None, *, record: Path | None = None, api_key: str | None = None) -> Starlette:
    """The stand-in as an ASGI app: ``location`` a directory for local mode's files, None for memory."""
    return StandIn(location, record=record, api_key=api_key).app()


def start_standin(
    log: Path,
    *,
    port: int | None = None,
    path: Path | None = None,
    record: Path | None = None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
    python: str = sys.executable,
    timeout: float = 60,
) -> Service:
    """The stand-in as a healthy process of its own (``Service.url`` is its base URL); ``python`` needs
    qdrant-client, Starlette and uvicorn (backend/.venv's). Stop it with ``Service.stop()``."""
    port = port or free_port()
    cmd = [python, "-m", "devharness.qdrant_standin", "--port", str(port)]
    for flag, value in (("--path", path), ("--record", record), ("--api-key", api_key)):
        if value is not None:
            cmd += [flag, str(value)]
    service = spawn(cmd, env, log, url=f"http://127.0.0.1:{port}", name=f"qdrant stand-in on port {port}")
    return wait_healthy(service, "/readyz", timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devharness.qdrant_standin",
        description="A test stand-in for a Qdrant server (REST subset over qdrant-client's local mode). "
        "Not Qdrant: no sharding, replication or consistency semantics; one request at a time.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6333)
    parser.add_argument("--path", type=Path, help="local mode's storage directory (default: in memory)")
    parser.add_argument("--record", type=Path, help="also append every create-collection request here (JSON lines)")
    parser.add_argument("--api-key", help="require this key (api-key header or bearer token), as Qdrant does")
    args = parser.parse_args(argv)

    import uvicorn

    app = build_app(None if args.path is None else str(args.path), record=args.record, api_key=args.api_key)
    # Warnings and errors only; uvicorn drains and stops on SIGTERM or SIGINT.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
