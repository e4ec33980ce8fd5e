"""Cohere's (v1 and v2) and Jina's request and response shapes, as the official `cohere` client sends and parses them.

The v2 client's `priority` and v1's `max_chunks_per_doc` are accepted and ignored (`extra="ignore"`): requests
are served in arrival order and nothing is chunked here. What cannot be honoured (images, relevant spans,
`input_type: image`) is refused with a 422 that says so, rather than answered with something not asked for.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

from ml_api.api.schemas.common import MAX_DIMENSIONS, MAX_TOP_N, Text, non_empty
from ml_api.embedding_types import EmbeddingType

MAX_TOKENS = 1_048_576  # above any model's length: a larger cap would change nothing, only absurd numbers stop here
TEXT_ONLY = "this server embeds text only; send `texts`"
# Strict: JSON `true` is not the number 1 nor `"3"` the number 3, as the schema says (the fuzz suite sends them).
Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str


class CohereRerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: Text = Field(min_length=1)
    documents: list[str | TextDocument] = Field(min_length=1)
    top_n: Int | None = Field(default=None, ge=1, le=MAX_TOP_N)
    return_documents: Bool = False
    model: Text | None = None

    @field_validator("documents")
    @classmethod
    def _check(cls, v: list[str | TextDocument]) -> list[str | TextDocument]:
        non_empty([d if isinstance(d, str) else d.text for d in v], "documents")
        return v

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RelevantSpans(BaseModel):
    """Rerank v5's relevant spans: only `disabled` is possible, as this reranker scores whole documents."""

    model_config = ConfigDict(extra="ignore")
    mode: Literal["disabled"]
    threshold: Number | None = Field(default=None, ge=0, le=1)
    max_spans: Int | None = Field(default=None, ge=1, le=MAX_TOP_N)

    @field_validator("mode", mode="before")
    @classmethod
    def _check(cls, v: object) -> object:
        if v == "enabled":
            raise ValueError("relevant spans are not supported: this reranker scores whole documents")
        return v


class CohereV2RerankRequest(CohereRerankRequest):
    """What `cohere.ClientV2.rerank` sends; `return_documents` too, as older clients and curl users send it."""

    max_tokens_per_doc: Int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOKENS,
        description="Cut each document alone (not the query) to its first this many tokens before scoring",
    )
    relevant_spans: RelevantSpans | None = None


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: TextDocument | None = None


class RerankUsage(BaseModel):
    total_tokens: int


class CohereRerankResponse(BaseModel):
    results: list[CohereResult]
    model: str
    usage: RerankUsage


class ApiVersion(BaseModel):
    version: Literal["1", "2"]


class BilledUnits(BaseModel):
    input_tokens: int | None = None
    search_units: int | None = None


class CohereMeta(BaseModel):
    api_version: ApiVersion
    billed_units: BilledUnits


class CohereV2RerankResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: CohereMeta


class CohereEmbedRequest(BaseModel):
    """What `cohere.Client.embed` (v1) and `cohere.ClientV2.embed` (v2) send; one shape serves both."""

    model_config = ConfigDict(extra="ignore")
    texts: list[str] = Field(min_length=1, description="The texts to embed")
    model: Text | None = None
    input_type: Literal["search_document", "search_query", "classification", "clustering"] | None = Field(
        default=None, description="Accepted and ignored: the loaded model has no per-task prompts to choose from"
    )
    embedding_types: list[EmbeddingType] | None = Field(
        default=None, min_length=1, description="Types to return; v2 defaults to float, v1 without them is floats"
    )
    output_dimension: Int | None = Field(
        default=None, ge=1, le=MAX_DIMENSIONS, description="Keep the first this many dimensions (Matryoshka)"
    )
    truncate: Literal["NONE", "START", "END"] = Field(
        default="END", description="END keeps the start, START keeps the end, NONE refuses over-long texts (413)"
    )
    max_tokens: Int | None = Field(
        default=None, ge=1, le=MAX_TOKENS, description="At least the model's max length (a lower cap: 422)"
    )

    @field_validator("texts")
    @classmethod
    def _texts(cls, v: list[str]) -> list[str]:
        return non_empty(v, "texts")

    @field_validator("input_type", mode="before")
    @classmethod
    def _input_type(cls, v: object) -> object:
        if v == "image":
            raise ValueError(f"'image' is not supported: {TEXT_ONLY}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: object) -> object:
        """Cohere's `images` and mixed `inputs` are refused by name, not ignored (so not in the schema either)."""
        if isinstance(data, dict):
            for field in ("images", "inputs"):
                if data.get(field) is not None:
                    raise ValueError(f"`{field}` is not supported: {TEXT_ONLY}")
        return data


Int8 = Annotated[int, Field(ge=-128, le=127)]
UInt8 = Annotated[int, Field(ge=0, le=255)]


class EmbeddingsByType(BaseModel):
    """Only the requested types are present; quantisation formulas: `ml_api.embedding_types`."""

    model_config = ConfigDict(populate_by_name=True)
    float_: list[list[float]] | None = Field(default=None, alias="float")
    int8: list[list[Int8]] | None = None
    uint8: list[list[UInt8]] | None = None
    binary: list[list[Int8]] | None = Field(default=None, description="Packed bits: ceil(dim / 8) bytes")
    ubinary: list[list[UInt8]] | None = Field(default=None, description="Packed bits: ceil(dim / 8) bytes")
    base64: list[str] | None = Field(default=None, description="The float32 little-endian bytes, base64")


class CohereEmbedByTypeResponse(BaseModel):
    id: str
    embeddings: EmbeddingsByType
    texts: list[str]
    meta: CohereMeta
    response_type: Literal["embeddings_by_type"] = "embeddings_by_type"


class CohereEmbedFloatsResponse(BaseModel):
    id: str
    embeddings: list[list[float]]
    texts: list[str]
    meta: CohereMeta
    response_type: Literal["embeddings_floats"] = "embeddings_floats"


CohereV1EmbedResponse = Annotated[
    CohereEmbedFloatsResponse | CohereEmbedByTypeResponse, Field(discriminator="response_type")
]
