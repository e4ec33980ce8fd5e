"""`rag-backend serve` (the HTTP API; INGEST_WORKERS ingestion slots in it, 0 for none) and `rag-backend worker`
(ingestion only, `--concurrency N` jobs at once)."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from rag_backend.core.config import WORKER_NEEDS_STORE, get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rag-backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    worker = sub.add_parser("worker", help="run ingestion jobs only (needs QDRANT_URL; DATABASE_URL across machines)")
    worker.add_argument("--concurrency", type=int, help="jobs at once (default WORKER_CONCURRENCY)")
    worker.add_argument("--host", help="bind address of /health, /ready, /metrics (default BACKEND_HOST)")
    worker.add_argument("--port", type=int, help="their port (default WORKER_PORT)")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "serve":
        _serve("rag_backend.api.app:create_app", args.host or settings.backend_host, args.port or settings.backend_port)
        return
    if not settings.qdrant_url:
        sys.exit(WORKER_NEEDS_STORE)
    if args.concurrency is not None:
        if args.concurrency < 1:
            parser.error("--concurrency must be at least 1")
        os.environ["WORKER_CONCURRENCY"] = str(args.concurrency)  # the factory reads it through the settings
        get_settings.cache_clear()
    _serve("rag_backend.api.worker:create_app", args.host or settings.backend_host, args.port or settings.worker_port)


def _serve(factory: str, host: str, port: int) -> None:
    uvicorn.run(factory, factory=True, host=host, port=port, log_config=None, timeout_graceful_shutdown=20)


if __name__ == "__main__":
    main()
