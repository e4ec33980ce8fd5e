"""/api/conversations (each caller's saved threads, their messages, feedback on answers) and /api/feedback (the
rated answers as a golden set, JSON Lines).

Access: anyone signed in (viewers too: they converse and rate answers) keeps conversations of their own; another
caller's conversation answers 404, as if it did not exist. Callers who are no user (AUTH_MODE=none, the operator
key) share one owner. The feedback export holds the caller's own ratings; an admin's (and the operator's) everyone's.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from rag_backend.access.model import Principal, Unauthenticated
from rag_backend.api.conversation_schemas import (
    Conversation,
    ConversationCreate,
    ConversationDetail,
    ConversationMessage,
    ConversationUpdate,
    FeedbackCreate,
    FeedbackLine,
)
from rag_backend.api.deps import ServicesDep, principal
from rag_backend.api.responses import raises
from rag_backend.catalog import CatalogUnavailable
from rag_backend.conversations import Conversations
from rag_backend.errors import InvalidInput, NotFound

router = APIRouter(tags=["conversations"])
Id = Annotated[str, Path(max_length=64)]
JSONL = "application/x-ndjson"


def owner_key(who: Principal) -> str:
    """What owns a caller's conversations: the user's id; "" for callers who are no user (they share one set)."""
    return who.user_id or ""


def _conversations(svc: ServicesDep) -> Conversations:
    return svc.conversations


ConversationsDep = Annotated[Conversations, Depends(_conversations)]


def caller(request: Request) -> Principal:
    """Anyone signed in, with a key of any scope: every role may converse (the guard has refused everyone else)."""
    who = principal(request)
    if not who.signed_in:
        raise Unauthenticated("sign in first")
    return who


CallerDep = Annotated[Principal, Depends(caller)]
DOWN = raises(CatalogUnavailable)


@router.post(
    "/api/conversations",
    status_code=201,
    response_model=Conversation,
    responses=raises(InvalidInput, CatalogUnavailable),
)
async def create_conversation(
    who: CallerDep, conversations: ConversationsDep, body: ConversationCreate | None = None
) -> Any:
    """A new, empty conversation (a body is optional)."""
    return await conversations.create(owner_key(who), body.title if body else None)


@router.get("/api/conversations", response_model=list[Conversation], responses=DOWN)
async def list_conversations(
    who: CallerDep,
    conversations: ConversationsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    """Your conversations, the most recently used first."""
    return await conversations.list(owner_key(who), limit, offset)


@router.get(
    "/api/conversations/{conversation_id}",
    response_model=ConversationDetail,
    responses=raises(NotFound, CatalogUnavailable),
)
async def get_conversation(conversation_id: Id, who: CallerDep, conversations: ConversationsDep) -> Any:
    """The conversation with its messages, oldest first."""
    return await conversations.get(owner_key(who), conversation_id)


@router.patch(
    "/api/conversations/{conversation_id}",
    response_model=Conversation,
    responses=raises(NotFound, InvalidInput, CatalogUnavailable),
)
async def rename_conversation(
    conversation_id: Id, body: ConversationUpdate, who: CallerDep, conversations: ConversationsDep
) -> Any:
    return await conversations.rename(owner_key(who), conversation_id, body.title)


@router.delete("/api/conversations/{conversation_id}", status_code=204, responses=raises(NotFound, CatalogUnavailable))
async def delete_conversation(conversation_id: Id, who: CallerDep, conversations: ConversationsDep) -> Response:
    """The conversation, its messages and the feedback given on them."""
    await conversations.delete(owner_key(who), conversation_id)
    return Response(status_code=204)


@router.post(
    "/api/conversations/{conversation_id}/messages/{message_id}/feedback",
    response_model=ConversationMessage,
    responses=raises(NotFound, InvalidInput, CatalogUnavailable),
)
async def give_feedback(
    conversation_id: Id, message_id: Id, body: FeedbackCreate, who: CallerDep, conversations: ConversationsDep
) -> Any:
    """Rates an answer (a later rating replaces the earlier one). A question (user message) cannot be rated: 400."""
    return await conversations.feedback(owner_key(who), conversation_id, message_id, body.rating, body.comment)


LINE = {"$ref": f"#/components/schemas/{FeedbackLine.__name__}"}
FEEDBACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One JSON object per line (format=jsonl), or a JSON array (format=json)",
        "content": {JSONL: {"schema": LINE}},
    },
    **DOWN,
}


@router.get("/api/feedback", response_model=list[FeedbackLine], responses=FEEDBACK_RESPONSES)
async def export_feedback(
    who: CallerDep,
    conversations: ConversationsDep,
    format: Annotated[Literal["jsonl", "json"], Query(description="jsonl: one answer per line")] = "jsonl",
) -> Response:
    """Rated answers (question, search_query, answer, cited chunk ids, rating, comment), oldest first: yours; an
    admin's export holds everyone's. `eval/feedback_golden.py` reads it as a golden set."""
    lines = await conversations.export(None if who.unrestricted else owner_key(who))
    if format == "json":
        return Response(orjson.dumps(lines), media_type="application/json")
    return Response(b"".join(orjson.dumps(line) + b"\n" for line in lines), media_type=JSONL)
