"""Saved conversations: threads of questions and answers kept in the catalog, follow-ups rewritten for retrieval,
feedback on answers exported as a golden set. No HTTP here: the routes map its errors (api/errors.py)."""

from rag_backend.conversations.service import Conversations, Turn

__all__ = ["Conversations", "Turn"]
