"""Users' feedback as a golden set: the export of `GET /api/feedback?format=jsonl`, replayed against a backend.

Every answer rated helpful (+1) becomes a judged query: its `search_query` (what was searched, a follow-up already
rewritten; else the question) with the documents its answer cited as the relevant ones (graded 1). Documents rather
than chunk ids, since re-indexing a document gives its chunks new ids; chunk-level recall of the cited passages is
reported beside. Answers rated unhelpful (-1) say the answer was wrong, not which passage would have been right: they
are counted, not judged.

    make eval EVAL_ARGS="--feedback feedback.jsonl --backend-url http://localhost:8000 --api-key KEY"
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Golden:
    queries: dict[str, str] = field(default_factory=dict)  # message id -> what to search
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # message id -> {document id: 1}
    chunks: dict[str, set[str]] = field(default_factory=dict)  # message id -> cited chunk ids
    lines: int = 0
    unhelpful: int = 0
    skipped: int = 0  # helpful, but citing nothing: nothing to judge against


def load_feedback(path: Path) -> Golden:
    """Reads an export (one JSON object per line); a line that is not one is an error naming its number."""
    golden = Golden()
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            rating = int(line["rating"])
            query = line.get("search_query") or line["question"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a feedback line ({exc})") from None
        golden.lines += 1
        if rating < 0:
            golden.unhelpful += 1
            continue
        docs = line.get("cited_document_ids") or []
        if not query or not docs:
            golden.skipped += 1
            continue
        key = str(line.get("message_id") or number)
        golden.queries[key] = query
        golden.qrels[key] = dict.fromkeys(docs, 1)
        golden.chunks[key] = set(line.get("cited_chunk_ids") or [])
    return golden


def replay(client: httpx.Client, golden: Golden, top_k: int, evaluate: Any) -> dict[str, Any]:
    """Each judged query through POST /api/query (hybrid + rerank, every collection the key reads), scored."""
    run: dict[str, list[str]] = {}
    found_chunks = []
    for key, query in golden.queries.items():
        r = client.post("/api/query", json={"query": query, "top_k": top_k})
        r.raise_for_status()
        results = r.json()["results"]
        run[key] = list(dict.fromkeys(res["document_id"] for res in results))
        cited = golden.chunks[key]
        if cited:
            found_chunks.append(len(cited & {res["id"] for res in results[:10]}) / len(cited))
    scores = evaluate(golden.qrels, run) if golden.qrels else {}
    return {
        **scores,
        "cited_chunk_recall@10": round(sum(found_chunks) / len(found_chunks), 4) if found_chunks else None,
        "judged": len(golden.queries),
        "lines": golden.lines,
        "unhelpful": golden.unhelpful,
        "skipped": golden.skipped,
    }
