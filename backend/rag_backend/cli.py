"""`rag-backend serve`: one process (the ingestion workers and the catalog live in it)."""

from __future__ import annotations

import argparse

import uvicorn

from rag_backend.core.config import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rag-backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    settings = get_settings()
    uvicorn.run(
        "rag_backend.api.app:create_app",
        factory=True,
        host=args.host or settings.backend_host,
        port=args.port or settings.backend_port,
        log_config=None,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
