"""The upload request's trace context, kept with its job so the job's spans link back to it (tracing).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("trace_parent", sa.Text))  # W3C traceparent of the upload; NULL untraced


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("trace_parent")
