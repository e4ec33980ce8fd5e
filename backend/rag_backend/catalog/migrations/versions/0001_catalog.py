"""The catalog as first released: collections and documents.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

FLOAT = sa.Float(precision=53)  # DOUBLE PRECISION on PostgreSQL (epoch seconds need it), REAL on SQLite


def upgrade() -> None:
    existing = sa.inspect(op.get_bind()).get_table_names()
    if "collections" not in existing:
        op.create_table(
            "collections",
            sa.Column("name", sa.Text, primary_key=True),
            sa.Column("embed_key", sa.Text),  # provider:model:dim, set by the first indexed document
            sa.Column("space", sa.Text),  # the store's physical collection / shard
            sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("created_at", FLOAT, nullable=False),
        )
    if "documents" not in existing:
        op.create_table(
            "documents",
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("collection", sa.Text, sa.ForeignKey("collections.name"), nullable=False),
            sa.Column("filename", sa.Text, nullable=False),
            sa.Column("format", sa.Text, nullable=False),
            sa.Column("size", sa.BigInteger, nullable=False),
            sa.Column("sha256", sa.Text, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("progress", FLOAT, nullable=False, server_default="0"),
            sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
            sa.Column("chunks_done", sa.Integer, nullable=False, server_default="0"),
            sa.Column("pages", sa.Integer),
            sa.Column("title", sa.Text),
            sa.Column("error", sa.Text),
            sa.Column("has_points", sa.Integer, nullable=False, server_default="0"),
            sa.Column("waiting_since", FLOAT),  # set while the job waits out a dependency outage
            sa.Column("retry_reason", sa.Text),
            sa.Column("next_retry_at", FLOAT),
            sa.Column("created_at", FLOAT, nullable=False),
            sa.Column("updated_at", FLOAT, nullable=False),
        )
        op.create_index("documents_collection", "documents", ["collection", "status"])
        op.create_index("documents_sha", "documents", ["collection", "sha256"])
        op.create_index("documents_name", "documents", ["collection", "filename"])
    else:  # a catalog of an early release may lack the outage columns
        have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("documents")}
        for name, kind in (("waiting_since", FLOAT), ("retry_reason", sa.Text), ("next_retry_at", FLOAT)):
            if name not in have:
                op.add_column("documents", sa.Column(name, kind))


def downgrade() -> None:
    op.drop_table("documents")
    op.drop_table("collections")
