"""Schema migrations (Alembic), applied when a catalog opens.

Several processes may start at once against one PostgreSQL: an advisory lock makes one migrate while the others wait
and then find nothing to do. On SQLite the migration's BEGIN IMMEDIATE does the same. A catalog written before
migrations existed (SQLite, no alembic_version) is adopted by the first revision, which creates only what is missing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_ID = 0x7261_6763  # any constant: the advisory lock's key, shared by every backend process


def migrate(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_ID})")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
