"""Saved conversations: each user's threads, their messages (question, answer, what was searched, the passages and
citations shown) and the feedback given on answers.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FLOAT = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Text, primary_key=True),
        # The user's id; "" for callers who are no user (AUTH_MODE=none, the operator key): they share one owner.
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("created_at", FLOAT, nullable=False),
        sa.Column("updated_at", FLOAT, nullable=False),
    )
    op.create_index("conversations_owner", "conversations", ["owner", "updated_at"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("conversation_id", sa.Text, sa.ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),  # order inside the conversation (timestamps may tie)
        sa.Column("role", sa.Text, nullable=False),  # user | assistant
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("search_query", sa.Text),  # what retrieval searched for this turn (the rewritten question)
        sa.Column("reply_to", sa.Text),  # an answer's question (the user message)
        sa.Column("citations", sa.Text),  # JSON
        sa.Column("results", sa.Text),  # JSON: the passages shown with the answer
        sa.Column("created_at", FLOAT, nullable=False),
        sa.Column("rating", sa.Integer),  # feedback on an answer: 1 | -1
        sa.Column("comment", sa.Text),
        sa.Column("feedback_at", FLOAT),
    )
    op.create_index("messages_conversation", "messages", ["conversation_id", "seq"])
    op.create_index("messages_rated", "messages", ["feedback_at"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("conversations")
