"""The feedback export's reader: helpful answers become judged queries, unhelpful ones are counted, bad lines named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedback_golden import load_feedback


def line(message_id: str, rating: int, docs: list[str], **extra: object) -> str:
    """A line as GET /api/feedback?format=jsonl writes it (backend/tests/test_conversations.py checks that side)."""
    return json.dumps({
        "conversation_id": "c1", "message_id": message_id, "question": "And how much does it cost?",
        "search_query": "And how much does it cost? heat pumps", "answer": "About 12,000 euros [1].",
        "cited_chunk_ids": [f"{d}-chunk" for d in docs], "cited_document_ids": docs, "rating": rating,
        "comment": None, "created_at": 1.0, **extra,
    })  # fmt: skip


def test_helpful_answers_become_judged_queries(tmp_path: Path) -> None:
    export = tmp_path / "feedback.jsonl"
    export.write_text("\n".join([line("m1", 1, ["d1", "d2"]), line("m2", -1, ["d3"]), line("m3", 1, []), ""]))
    golden = load_feedback(export)
    assert golden.queries == {"m1": "And how much does it cost? heat pumps"}  # what was searched, not the bare words
    assert golden.qrels == {"m1": {"d1": 1, "d2": 1}} and golden.chunks == {"m1": {"d1-chunk", "d2-chunk"}}
    assert (golden.lines, golden.unhelpful, golden.skipped) == (3, 1, 1)


def test_a_line_that_is_not_feedback_is_named(tmp_path: Path) -> None:
    export = tmp_path / "feedback.jsonl"
    export.write_text(line("m1", 1, ["d1"]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"feedback.jsonl:2"):
        load_feedback(export)
