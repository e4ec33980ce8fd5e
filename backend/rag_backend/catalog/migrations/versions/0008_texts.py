"""Sources at the passage: each document's parsed text, which its chunks' char_start/char_end index.

Revision ID: 0008
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On both engines: a row per document, written and removed with it. UTF-8 bytes rather than TEXT, since a
    # parsed text may hold characters (NUL) that a PostgreSQL text value cannot.
    op.create_table(
        "texts",
        sa.Column("document_id", sa.Text, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("texts")
