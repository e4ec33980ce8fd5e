"""Request and response shapes; the response models document the 2xx answers (and /ready's 503) in /docs, and
ErrorBody every error answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from rag_backend.api.errors import ErrorType
from rag_backend.catalog import COLLECTION_NAME, DocumentStatus
from rag_backend.readiness import Status


class Reply(BaseModel):
    """A body the backend always sends whole (every field, null or not): OpenAPI marks every field required,
    so the page's generated types carry no `?` for fields that are in fact always there."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class ErrorBody(BaseModel):
    """Every error answer, whatever its status: the reason in words, and a kind to switch on."""

    model_config = ConfigDict(extra="forbid")  # the document says: these two keys and nothing else
    error: str = Field(description="Why, written for people (names the field, limit or dependency at fault)")
    error_type: ErrorType


def check_collection_name(name: str) -> str:
    if not COLLECTION_NAME.fullmatch(name):  # fullmatch: `$` alone would let a trailing newline through
        raise ValueError("collection names are 1-64 characters: letters, digits, '_', '-', '.', starting alphanumeric")
    return name


def valid_unicode(value: str) -> str:
    """JSON can carry a lone UTF-16 surrogate ("\\ud800") that no UTF-8 consumer (SQLite, Qdrant, ml-api) accepts:
    refused here with a reason instead of failing as a 500 further in."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text is not valid Unicode (it contains a lone UTF-16 surrogate)") from None
    return value


MAX_FILTER_VALUES = 1000  # ids or file names in one filter
MAX_QUERY_COLLECTIONS = 256  # collections named by one query (omitting them searches every readable one)
CollectionName = Annotated[str, StringConstraints(max_length=64), AfterValidator(check_collection_name)]
DocumentId = Annotated[str, StringConstraints(max_length=64), AfterValidator(valid_unicode)]
FileName = Annotated[str, StringConstraints(max_length=1024), AfterValidator(valid_unicode)]


class QueryFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_id: list[DocumentId] | None = Field(
        None, max_length=MAX_FILTER_VALUES, description="Only these documents (one id or a list)"
    )
    source: list[FileName] | None = Field(
        None, max_length=MAX_FILTER_VALUES, description="Only these file names (one or a list)"
    )

    @field_validator("document_id", "source", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: Annotated[str, AfterValidator(valid_unicode)] = Field(min_length=1, max_length=8192)
    collections: list[CollectionName] | None = Field(
        None, min_length=1, max_length=MAX_QUERY_COLLECTIONS, description="Search these collections, ranked together "
        "(each result names its collection). Omitted, with `collection` too: every collection the caller can read. "
        "A name that does not exist or that the caller cannot read is a 404",
    )  # fmt: skip
    collection: str | None = Field(
        None, max_length=64, description="One collection: the older form of `collections` (not both)"
    )
    top_k: int | None = Field(None, ge=1, le=1000, description="Default: DEFAULT_TOP_K")
    dense: bool = Field(True, description="Dense (embedding) retrieval")
    sparse: bool = Field(True, description="Sparse BM25 retrieval; with dense, fused by RRF")
    rerank: bool = Field(True, description="Rerank the fused candidate pool with ml-api /rerank")
    candidates: int | None = Field(None, ge=1, le=1000, description="Pool size to rerank (RERANK_CANDIDATES)")
    filters: QueryFilters | None = None
    rerank_model: str | None = Field(
        None, min_length=1, max_length=128, description="A served reranker's name (Default: QUERY_RERANK_MODEL, "
        "else ml-api's default); an unknown name is refused with 400",
    )  # fmt: skip
    generate: bool = Field(False, description="Add an LLM answer with citations (LLM_PROVIDERS chain)")
    conversation_id: str | None = Field(
        None, max_length=64, description="Ask inside this conversation (yours): a follow-up is rewritten into a "
        "standalone search query from the recent turns, the answer prompt carries them, and the question and its "
        "answer are kept as two messages. Unknown or not yours: 404, before any work",
    )  # fmt: skip

    @field_validator("query")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("query is blank")
        return v

    @field_validator("collection")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_collection_name(v)

    @model_validator(mode="after")
    def _one_form(self) -> QueryRequest:
        if self.collection is not None and self.collections is not None:  # null is as good as left out
            raise ValueError("give `collections` (a list) or `collection` (one name, the older form), not both")
        return self

    def targets(self) -> tuple[str, ...] | None:
        """The collections asked for, each once, in the order given; None: every readable collection."""
        if self.collections is not None:
            return tuple(dict.fromkeys(self.collections))
        return None if self.collection is None else (self.collection,)


CHAR_START = (
    "Where the passage starts in GET /api/documents/{document_id}/text, in Unicode code points (not UTF-16 units): "
    "the passage is text[char_start:char_end]. Null for passages indexed before offsets were kept"
)
CHAR_END = "Where the passage ends (exclusive) in the document's parsed text; null like char_start"


class QueryResult(Reply):
    id: str
    text: str
    score: float = Field(description="Fused RRF score (dense cosine or BM25 score when only one is on)")
    rerank_score: float | None = Field(description="Cross-encoder relevance in [0, 1]; null without rerank")
    collection: str = Field(description="The collection the passage belongs to")
    document_id: str
    source: str
    title: str | None = None
    position: int
    page: int | None = None
    heading: str | None = None
    char_start: int | None = Field(None, description=CHAR_START)
    char_end: int | None = Field(None, description=CHAR_END)


class Citation(BaseModel):
    marker: int = Field(description="The [n] in the answer text")
    result_id: str = Field(description="id of the result (passage) it cites")
    collection: str | None = None
    document_id: str | None
    source: str | None
    page: int | None = None
    position: int | None = None
    char_start: int | None = Field(None, description=CHAR_START)
    char_end: int | None = Field(None, description=CHAR_END)


class AnswerInfo(BaseModel):
    provider: str = Field(description="ollama | openai | extractive")
    model: str | None
    cached: bool
    fallbacks: list[dict[str, str]] = Field(description="Providers tried before the one that answered, and why")
    truncated: str | None = Field(None, description="Set when the provider failed mid-answer")
    reason: str | None = Field(None, description="Why the answer is extractive")


class QueryResponse(BaseModel):
    results: list[QueryResult]
    timings: dict[str, float]
    cached: bool
    answer: str | None = Field(None, description='With "generate": the answer, citing results as [n]')
    citations: list[Citation] | None = None
    llm: AnswerInfo | None = None
    search_query: str = Field(description="What retrieval searched: the question, or with a conversation the "
                              "follow-up rewritten from the earlier turns")  # fmt: skip
    conversation_id: str | None = Field(None, description="The conversation the turn was kept in")
    message_id: str | None = Field(None, description="With a conversation: the answer's message id (for feedback)")


class Document(Reply):
    id: str
    job_id: str = Field(description="Same as id: a document is its own ingestion job")
    collection: str
    filename: str
    format: str
    size: int
    status: DocumentStatus
    progress: float
    chunks: int
    chunks_done: int
    pages: int | None = None
    title: str | None = None
    error: str | None = None
    waiting_since: float | None = Field(
        None, description="Set while the job waits out an outage of ml-api, the embedder or the store (epoch s)"
    )
    retry_reason: str | None = Field(None, description="Why it waits: the last transient failure")
    next_retry_at: float | None = Field(None, description="When the next trial call is due (epoch s)")
    created_at: float
    updated_at: float


class UploadItem(Reply):
    filename: str
    id: str | None = None
    job_id: str | None = None
    status: DocumentStatus | Literal["rejected"] = Field(description="'rejected': refused at upload, see error")
    duplicate: bool = False
    replaces: str | None = Field(None, description="Ready version of the same file name this one will replace")
    error: str | None = None
    error_type: ErrorType | None = None


class UploadResponse(Reply):
    documents: list[UploadItem]


class DocumentList(Reply):
    documents: list[Document]
    total: int


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=64)
    embed_model: str | None = Field(
        None, min_length=1, max_length=128, description="A served embedder's name (ml-api's /v1/models); the "
        "collection's documents and queries use it. Default: ml-api's default embedder, bound at the first upload",
    )  # fmt: skip

    _check = field_validator("name")(classmethod(lambda cls, v: check_collection_name(v)))


class CollectionInfo(Reply):
    name: str
    embed_model: str | None = Field(
        description="provider:model:dimensions the collection is bound to; null until its first upload when it "
        "was created without one"
    )
    documents: int
    ready: int
    failed: int
    chunks: int = Field(description="Chunks of the ready documents")
    version: int
    created_at: float
    owner: str | None = Field(description="The creator's e-mail; null: no owner (made without users: admins only)")
    access: Literal["admin", "owner", "write", "read"] = Field(
        description="What the caller may do: admin (everything), owner (also members and deletion), write "
        "(upload, delete documents), read"
    )


class CollectionDeletion(Reply):
    name: str
    status: Literal["deleting"] = Field(
        description="Hidden from listings, uploads and queries now; a job removes its documents, points and uploads"
    )


class ReadyComponent(Reply):
    ok: bool
    detail: str = Field(description="What the probe saw; URLs and paths redacted unless the caller holds API_KEY")
    kind: str = Field(description="What answers it: ml-api, qdrant-edge, qdrant, redis, memory, the LLM chain, ...")


class ReadyReport(Reply):
    """/ready's body, with 200 and with 503 alike."""

    status: Status = Field(description="ready; degraded (200: the query path works without the cache); unavailable")
    components: dict[str, ReadyComponent] = Field(description="catalog, embeddings, reranker, store, cache, llm")
