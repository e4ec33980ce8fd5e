"""`rag-backend serve` (the HTTP API; INGEST_WORKERS ingestion slots in it, 0 for none), `rag-backend worker`
(ingestion only, `--concurrency N` jobs at once), `rag-backend import-catalog` (a one-machine stack's SQLite
catalog into DATABASE_URL's, once, when moving to PostgreSQL) and `rag-backend users ...` (the catalog's users)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import uvicorn

from rag_backend.core.config import WORKER_NEEDS_STORE, Settings, get_settings


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
    copy = sub.add_parser("import-catalog", help="copy a SQLite catalog and its uploads into DATABASE_URL's")
    copy.add_argument("--from", dest="source", type=Path, help="the file (default DATA_DIR/catalog.sqlite3)")
    copy.add_argument("--uploads", type=Path, help="its uploads in flight (default: uploads/ beside the file)")
    users = sub.add_parser("users", help="manage the users of AUTH_MODE=users (in the catalog)")
    verbs = users.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="add a user (the password is asked for, or read from stdin)")
    create.add_argument("email")
    create.add_argument("--role", required=True, choices=["admin", "editor", "viewer"])
    create.add_argument("--name")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin (first line)")
    create.add_argument("--no-password", action="store_true", help="no password: the user signs in with OIDC")
    verbs.add_parser("list", help="every user, role and state")
    disable = verbs.add_parser("disable", help="sign a user out everywhere and stop their keys")
    disable.add_argument("email")
    enable = verbs.add_parser("enable", help="let a disabled user sign in again")
    enable.add_argument("email")
    set_role = verbs.add_parser("set-role", help="change a user's role (their keys follow)")
    set_role.add_argument("email")
    set_role.add_argument("role", choices=["admin", "editor", "viewer"])
    args = parser.parse_args(argv)
    if args.command == "serve" and args.host:
        os.environ["BACKEND_HOST"] = args.host  # AUTH_MODE=none is checked against the address really bound
        get_settings.cache_clear()
    try:
        settings = get_settings()
    except ValueError as exc:  # pydantic's ValidationError: the reason, without a traceback
        sys.exit(f"rag-backend: {exc}")
    if args.command == "users":
        from rag_backend.access.cli import users_command

        sys.exit(users_command(settings, args))
    if args.command == "import-catalog":
        sys.exit(_import_catalog(settings, args.source, args.uploads))
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


def _import_catalog(settings: Settings, source: Path | None, uploads: Path | None) -> int:
    """Prints what was copied, or why nothing was (exit status 1)."""
    from rag_backend.catalog import open_catalog, sqlite_paths
    from rag_backend.catalog.transfer import copy_catalog
    from rag_backend.errors import DomainError

    if not settings.database_url:
        print("import-catalog: set DATABASE_URL to the PostgreSQL catalog to copy into", file=sys.stderr)
        return 2
    default_source, default_uploads = sqlite_paths(source.parent if source else settings.data_dir)
    source = source or default_source
    try:
        target = open_catalog(settings.database_url, settings.data_dir, 1)
        try:
            report = copy_catalog(source, uploads or default_uploads, target)
        finally:
            target.close()
    except DomainError as exc:
        print(f"import-catalog: {exc}", file=sys.stderr)
        return 1
    print(f"import-catalog: {source} -> {target.kind}: {report.summary()}")
    return 0


def _serve(factory: str, host: str, port: int) -> None:
    uvicorn.run(
        factory, factory=True, host=host, port=port, log_config=None, timeout_graceful_shutdown=20,
        forwarded_allow_ips=get_settings().forwarded_allow_ips,  # whose X-Forwarded-For/-Proto are believed
    )  # fmt: skip


if __name__ == "__main__":
    main()
