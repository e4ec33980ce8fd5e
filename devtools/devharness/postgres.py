"""A PostgreSQL database of a test's or benchmark's own: created on the machine's server, dropped afterwards.

psycopg is imported when used: it is in backend/.venv, not in ml-api's, and this package is installed into both.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str = "rag_test") -> Iterator[str]:
    """Yields the URL of a new database next to `admin_url`'s; drops it with whatever connections are left on it."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
