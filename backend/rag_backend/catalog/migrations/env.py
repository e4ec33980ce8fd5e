"""Alembic's entry: runs on the connection (and inside the transaction) that rag_backend.catalog.migrate opened."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
