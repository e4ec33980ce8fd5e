"""Deleting a collection is a job: the collection is hidden at once (`deleting`) and leased to whoever removes it.

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("deleting", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("lease_owner", sa.Text))
        batch.add_column(sa.Column("lease_until", sa.Float(precision=53)))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        for column in ("lease_until", "lease_owner", "deleting"):
            batch.drop_column(column)
