"""The conversation tables of the catalog (migration 0009): conversations, their messages, feedback on answers.

Synchronous SQL on the catalog's engine (SQLite or PostgreSQL alike); async callers go through `Catalog.run`. Every
statement that reads or changes a conversation names its owner, so a row of another owner is never touched: to the
caller it does not exist.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from sqlalchemy import text

from rag_backend.catalog import Catalog

_MESSAGE = (
    "m.id, m.role, m.content, m.search_query, m.reply_to, m.citations, m.results, m.created_at, m.rating, m.comment, "
    "m.feedback_at"
)


def _message(row: dict[str, Any]) -> dict[str, Any]:
    """A stored message as the API shows it: JSON columns decoded, feedback as one object (or None)."""
    feedback = None
    if row["rating"] is not None:
        feedback = {"rating": row["rating"], "comment": row["comment"], "created_at": row["feedback_at"]}
    return {
        "id": row["id"],
        "role": row["role"],
        "content": row["content"],
        "search_query": row["search_query"],
        "citations": orjson.loads(row["citations"]) if row["citations"] else [],
        "results": orjson.loads(row["results"]) if row["results"] else [],
        "created_at": row["created_at"],
        "feedback": feedback,
    }


class ConversationStore:
    def __init__(self, catalog: Catalog) -> None:
        self.c = catalog

    def create(self, owner: str, title: str | None) -> dict[str, Any]:
        now = time.time()
        conv_id = str(uuid.uuid4())
        self.c._run(
            "INSERT INTO conversations(id, owner, title, created_at, updated_at) VALUES (:id, :o, :t, :now, :now)",
            id=conv_id, o=owner, t=title, now=now,
        )  # fmt: skip
        return self.get(owner, conv_id)  # type: ignore[return-value]

    def get(self, owner: str, conv_id: str) -> dict[str, Any] | None:
        return self.c._one(
            "SELECT id, title, created_at, updated_at FROM conversations WHERE id = :id AND owner = :o",
            id=conv_id, o=owner,
        )  # fmt: skip

    def list(self, owner: str, limit: int, offset: int) -> list[dict[str, Any]]:
        return self.c._all(
            "SELECT id, title, created_at, updated_at FROM conversations WHERE owner = :o "
            "ORDER BY updated_at DESC, id LIMIT :limit OFFSET :offset",
            o=owner, limit=limit, offset=offset,
        )  # fmt: skip

    def rename(self, owner: str, conv_id: str, title: str | None) -> dict[str, Any] | None:
        self.c._run(
            "UPDATE conversations SET title = :t, updated_at = :now WHERE id = :id AND owner = :o",
            t=title, now=time.time(), id=conv_id, o=owner,
        )  # fmt: skip
        return self.get(owner, conv_id)

    def delete(self, owner: str, conv_id: str) -> bool:
        with self.c._tx() as conn:
            gone = conn.execute(
                text("DELETE FROM conversations WHERE id = :id AND owner = :o"), {"id": conv_id, "o": owner}
            ).rowcount
            if gone:  # the foreign key cascades on PostgreSQL and SQLite alike; said once more for old databases
                conn.execute(text("DELETE FROM messages WHERE conversation_id = :id"), {"id": conv_id})
        return gone == 1

    def messages(self, conv_id: str, last: int | None = None) -> list[dict[str, Any]]:
        """The conversation's messages in order; with `last`, only the last ones (the recent turns)."""
        if last is None:
            rows = self.c._all(
                f"SELECT {_MESSAGE} FROM messages m WHERE m.conversation_id = :id ORDER BY m.seq", id=conv_id
            )
        else:
            rows = self.c._all(
                f"SELECT {_MESSAGE}, m.seq FROM messages m WHERE m.conversation_id = :id ORDER BY m.seq DESC "
                "LIMIT :n",
                id=conv_id, n=last,
            )[::-1]  # fmt: skip
        return [_message(r) for r in rows]

    def add_turn(
        self,
        owner: str,
        conv_id: str,
        question: str,
        answer: str,
        search_query: str,
        citations: list[dict[str, Any]],
        results: list[dict[str, Any]],
        answer_id: str,
        title: str,
    ) -> bool:
        """The question and its answer, in one transaction; the conversation takes `title` if it has none yet.
        False (nothing written) when the conversation was deleted meanwhile."""
        now = time.time()
        with self.c._tx() as conn:
            touched = conn.execute(
                text("UPDATE conversations SET updated_at = :now, title = COALESCE(title, :t) "
                     "WHERE id = :id AND owner = :o"),
                {"now": now, "t": title, "id": conv_id, "o": owner},
            ).rowcount  # fmt: skip
            if touched != 1:
                return False
            seq = conn.execute(
                text("SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = :id"), {"id": conv_id}
            ).scalar_one()
            question_id = str(uuid.uuid4())
            insert = text(
                "INSERT INTO messages(id, conversation_id, seq, role, content, search_query, reply_to, citations, "
                "results, created_at) VALUES (:id, :c, :seq, :role, :content, :sq, :reply, :cit, :res, :now)"
            )
            conn.execute(insert, {"id": question_id, "c": conv_id, "seq": seq + 1, "role": "user", "content": question,
                                  "sq": search_query, "reply": None, "cit": None, "res": None, "now": now})  # fmt: skip
            conn.execute(insert, {"id": answer_id, "c": conv_id, "seq": seq + 2, "role": "assistant",
                                  "content": answer, "sq": search_query, "reply": question_id,
                                  "cit": orjson.dumps(citations).decode(), "res": orjson.dumps(results).decode(),
                                  "now": now})  # fmt: skip
        return True

    def set_feedback(
        self, owner: str, conv_id: str, message_id: str, rating: int, comment: str | None
    ) -> dict[str, Any] | None:
        """Feedback on an answer of the owner's conversation; None when there is no such message there. Only answers
        take feedback: the caller checks the role first (`message_role`)."""
        done = self.c._run(
            "UPDATE messages SET rating = :r, comment = :cm, feedback_at = :now WHERE id = :m AND "
            "conversation_id = :c AND role = 'assistant' AND conversation_id IN "
            "(SELECT id FROM conversations WHERE id = :c AND owner = :o)",
            r=rating, cm=comment, now=time.time(), m=message_id, c=conv_id, o=owner,
        )  # fmt: skip
        if not done:
            return None
        row = self.c._one(f"SELECT {_MESSAGE} FROM messages m WHERE m.id = :m", m=message_id)
        return _message(row) if row else None

    def message_role(self, owner: str, conv_id: str, message_id: str) -> str | None:
        row = self.c._one(
            "SELECT m.role FROM messages m JOIN conversations c ON c.id = m.conversation_id "
            "WHERE m.id = :m AND c.id = :c AND c.owner = :o",
            m=message_id, c=conv_id, o=owner,
        )  # fmt: skip
        return row["role"] if row else None

    def feedback(self, owner: str | None, limit: int) -> list[dict[str, Any]]:
        """Rated answers with their questions, oldest first; `owner` None: everyone's."""
        where, args = ("", {}) if owner is None else (" AND c.owner = :o", {"o": owner})
        return self.c._all(
            "SELECT a.id AS message_id, a.conversation_id, q.content AS question, a.search_query, "
            "a.content AS answer, a.citations, a.rating, a.comment, a.feedback_at "
            "FROM messages a JOIN conversations c ON c.id = a.conversation_id "
            "LEFT JOIN messages q ON q.id = a.reply_to "
            f"WHERE a.role = 'assistant' AND a.rating IS NOT NULL{where} ORDER BY a.feedback_at, a.id LIMIT :limit",
            limit=limit, **args,
        )  # fmt: skip
