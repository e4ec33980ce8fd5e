"""Jobs shared by several processes: leases, resumable progress, uploads in the database (PostgreSQL).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("lease_owner", sa.Text))  # the process working on the row now
        batch.add_column(sa.Column("lease_until", sa.Float(precision=53)))  # database clock, epoch seconds
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("chunks_sha", sa.Text))  # the chunking a resumed job must reproduce
    op.create_index("documents_work", "documents", ["status", "created_at"])
    if op.get_bind().dialect.name == "postgresql":  # SQLite keeps uploads as files (rag_backend.catalog.sqlite)
        op.create_table(
            "uploads",
            sa.Column("document_id", sa.Text, primary_key=True),
            sa.Column("data", sa.LargeBinary, nullable=False),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table("uploads")
    op.drop_index("documents_work", "documents")
    with op.batch_alter_table("documents") as batch:
        for column in ("chunks_sha", "attempts", "lease_until", "lease_owner"):
            batch.drop_column(column)
