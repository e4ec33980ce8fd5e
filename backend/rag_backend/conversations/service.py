"""The conversation service: owners' threads, a question's turn (history, rewriting, recording), feedback.

Ownership: every call names the owner (a user's id; "" for callers who are no user, AUTH_MODE=none and the operator
key, who share one set). A conversation of another owner is NotFound, exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from rag_backend.catalog import Catalog
from rag_backend.conversations.rewrite import Rewritten, Turn, rewrite, turns
from rag_backend.conversations.store import ConversationStore
from rag_backend.core.config import Settings
from rag_backend.errors import InvalidInput, NotFound
from rag_backend.llm import Chain

TITLE_CHARS = 60  # a title taken from the first question
MAX_EXPORT = 100_000  # feedback lines in one export


def title_of(question: str) -> str:
    """The first question as a title: one line, at most TITLE_CHARS, cut at a word when it can be."""
    text = " ".join(question.split())
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space >= TITLE_CHARS // 2 else cut).rstrip(" ,;:.-") + "…"


@dataclass(slots=True)
class Turning:
    """A question on its way through a conversation: what was said before, what is searched, the answer's id."""

    owner: str
    conversation_id: str
    question: str
    history: list[Turn]
    rewritten: Rewritten
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def search_query(self) -> str:
        return self.rewritten.query


class Conversations:
    def __init__(self, settings: Settings, catalog: Catalog, chain: Chain | None) -> None:
        self.s, self.catalog, self.chain = settings, catalog, chain
        self.store = ConversationStore(catalog)

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.catalog.run(fn, *args, **kwargs)

    async def create(self, owner: str, title: str | None) -> dict[str, Any]:
        return await self._run(self.store.create, owner, _title(title))

    async def list(self, owner: str, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self._run(self.store.list, owner, limit, offset)

    async def get(self, owner: str, conv_id: str) -> dict[str, Any]:
        conv = await self._owned(owner, conv_id)
        return {**conv, "messages": await self._run(self.store.messages, conv_id)}

    async def rename(self, owner: str, conv_id: str, title: str | None) -> dict[str, Any]:
        conv = await self._run(self.store.rename, owner, conv_id, _title(title))
        if conv is None:
            raise NotFound(f"conversation '{conv_id}' does not exist")
        return conv

    async def delete(self, owner: str, conv_id: str) -> None:
        if not await self._run(self.store.delete, owner, conv_id):
            raise NotFound(f"conversation '{conv_id}' does not exist")

    async def _owned(self, owner: str, conv_id: str) -> dict[str, Any]:
        conv = await self._run(self.store.get, owner, conv_id)
        if conv is None:
            raise NotFound(f"conversation '{conv_id}' does not exist")
        return conv

    # -- a question's turn ------------------------------------------------------------------------------
    async def begin(self, owner: str, conv_id: str, question: str) -> Turning:
        """Before retrieval: NotFound unless the owner has this conversation; the recent turns; the search query."""
        await self._owned(owner, conv_id)
        recent = await self._run(self.store.messages, conv_id, 2 * self.s.conversation_history_turns)
        history = turns(recent)[-self.s.conversation_history_turns :]
        rewritten = await rewrite(question, history, self.chain, self.s.rewrite_max_tokens, self.s.rewrite_timeout_s)
        return Turning(owner, conv_id, question, history, rewritten)

    async def finish(
        self, turn: Turning, answer: str, citations: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> bool:
        """Keeps the question and its answer; False when the conversation was deleted meanwhile."""
        return await self._run(
            self.store.add_turn, turn.owner, turn.conversation_id, turn.question, answer, turn.search_query,
            citations, results, turn.message_id, title_of(turn.question),
        )  # fmt: skip

    # -- feedback ---------------------------------------------------------------------------------------
    async def feedback(
        self, owner: str, conv_id: str, message_id: str, rating: int, comment: str | None
    ) -> dict[str, Any]:
        await self._owned(owner, conv_id)
        role = await self._run(self.store.message_role, owner, conv_id, message_id)
        if role is None:
            raise NotFound(f"conversation '{conv_id}' has no message '{message_id}'")
        if role != "assistant":
            raise InvalidInput("feedback is given on answers (assistant messages), not on questions")
        if rating not in (1, -1):
            raise InvalidInput("rating must be 1 (helpful) or -1 (not helpful)")
        message = await self._run(self.store.set_feedback, owner, conv_id, message_id, rating, comment)
        if message is None:  # deleted between the two statements
            raise NotFound(f"conversation '{conv_id}' has no message '{message_id}'")
        return message

    async def export(self, owner: str | None, limit: int = MAX_EXPORT) -> list[dict[str, Any]]:
        """Rated answers as golden-set lines (oldest first); `owner` None: everyone's (admins)."""
        rows = await self._run(self.store.feedback, owner, limit)
        out = []
        for r in rows:
            cited = orjson.loads(r["citations"]) if r["citations"] else []
            out.append({
                "conversation_id": r["conversation_id"], "message_id": r["message_id"], "question": r["question"],
                "search_query": r["search_query"], "answer": r["answer"],
                "cited_chunk_ids": [c["result_id"] for c in cited if c.get("result_id")],
                "cited_document_ids": list(dict.fromkeys(c["document_id"] for c in cited if c.get("document_id"))),
                "rating": r["rating"], "comment": r["comment"], "created_at": r["feedback_at"],
            })  # fmt: skip
        return out


def _title(title: str | None) -> str | None:
    """A given title, one line and trimmed; blank is none (the first question will title it)."""
    if title is None:
        return None
    return " ".join(title.split()) or None
