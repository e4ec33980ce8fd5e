"""Users, sign-in sessions, API keys, collection owners and grants, failed sign-in counts, OIDC flows in progress.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FLOAT = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Text, primary_key=True),  # a UUID: stable across e-mail changes, what owners record
        sa.Column("email", sa.Text, nullable=False, unique=True),  # lower case
        sa.Column("name", sa.Text),
        sa.Column("role", sa.Text, nullable=False),  # admin | editor | viewer
        sa.Column("password_hash", sa.Text),  # Argon2id; NULL for users who only sign in with OIDC
        sa.Column("disabled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("oidc_subject", sa.Text, unique=True),  # issuer + " " + sub
        sa.Column("created_at", FLOAT, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.Text, primary_key=True),  # sha256 of the cookie's value
        sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", FLOAT, nullable=False),
        sa.Column("expires_at", FLOAT, nullable=False),
    )
    op.create_index("sessions_user", "sessions", ["user_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),  # read | write | admin
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),  # sha256 of the token (shown once)
        sa.Column("prefix", sa.Text, nullable=False),  # the token's first characters, to recognise it in a list
        sa.Column("created_at", FLOAT, nullable=False),
        sa.Column("expires_at", FLOAT),
    )
    op.create_index("api_keys_user", "api_keys", ["user_id"])
    op.create_table(
        "collection_members",
        sa.Column("collection", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("access", sa.Text, nullable=False),  # read | write
        sa.Column("created_at", FLOAT, nullable=False),
    )
    op.create_index("collection_members_user", "collection_members", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.Text, primary_key=True),  # "account:<email>" or "address:<ip>"
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_until", FLOAT, nullable=False),
    )
    op.create_table(
        "oidc_flows",
        sa.Column("state", sa.Text, primary_key=True),
        sa.Column("code_verifier", sa.Text, nullable=False),
        sa.Column("nonce", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("expires_at", FLOAT, nullable=False),
    )
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("owner_id", sa.Text))  # the user who created it; NULL: admins only


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("owner_id")
    for table in ("oidc_flows", "login_failures", "collection_members", "api_keys", "sessions", "users"):
        op.drop_table(table)
