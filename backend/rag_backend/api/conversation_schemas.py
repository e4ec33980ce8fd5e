"""Request and response shapes of conversations, their messages and feedback."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from rag_backend.api.schemas import Citation, QueryResult, Reply, valid_unicode

MAX_TITLE = 200
MAX_COMMENT = 4000
Title = Annotated[str, AfterValidator(valid_unicode)]


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title | None = Field(
        None, max_length=MAX_TITLE, description="Omitted or blank: the first question titles it (its first 60 chars)"
    )


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Title | None = Field(max_length=MAX_TITLE, description="The new title; null or blank clears it")


class Conversation(Reply):
    id: str
    title: str | None = Field(description="null until given one or until its first question")
    created_at: float
    updated_at: float = Field(description="Last question or rename (epoch s); the list is newest first by it")


class Feedback(Reply):
    rating: Literal[1, -1] = Field(description="1: helpful, -1: not helpful")
    comment: str | None
    created_at: float


class ConversationMessage(Reply):
    id: str
    role: Literal["user", "assistant"]
    content: str = Field(description="The question, or the answer (Markdown with [n] citation markers)")
    search_query: str | None = Field(
        description="What retrieval searched for this turn: the question rewritten from the earlier turns when it "
        "was a follow-up, else the question itself"
    )
    citations: list[Citation] = Field(description="An answer's citations ([] on questions)")
    results: list[QueryResult] = Field(description="The passages retrieved for an answer ([] on questions)")
    created_at: float
    feedback: Feedback | None = Field(description="On answers that were rated")


class ConversationDetail(Conversation):
    messages: list[ConversationMessage] = Field(description="Oldest first: a question, then its answer")


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: Literal[1, -1] = Field(description="1: helpful, -1: not helpful")
    comment: Annotated[str, AfterValidator(valid_unicode)] | None = Field(None, max_length=MAX_COMMENT)


class FeedbackLine(Reply):
    """One line of GET /api/feedback?format=jsonl (a golden set for `make eval`)."""

    conversation_id: str
    message_id: str
    question: str | None
    search_query: str | None
    answer: str
    cited_chunk_ids: list[str]
    cited_document_ids: list[str]
    rating: Literal[1, -1]
    comment: str | None
    created_at: float
