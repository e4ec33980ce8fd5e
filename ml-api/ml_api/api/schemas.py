"""Request/response shapes of TEI (/embed, /rerank), OpenAI (/v1/embeddings) and Cohere/Jina (/v1/rerank).

Every text field refuses a lone UTF-16 surrogate (`"\\ud800"` is valid JSON but no Unicode text) with a 422
naming the field, index and position: TEI's serde_json refuses such JSON too, and replacing it with U+FFFD would
embed something other than what the client sent. NUL and other control characters are valid text and pass (the
tokenizers' normalisers drop them). Every number has bounds, so OpenAPI shows them.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from ml_api.api.errors import ErrorType

MAX_TOP_N = 100_000  # above any client batch: top_n past the number of texts returns them all
MAX_DIMENSIONS = 65_536  # above any model's width; the engine refuses more than the loaded model has
_SURROGATE = re.compile("[\ud800-\udfff]")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def unicode_problem(text: str) -> str | None:
    """Why `text` cannot be encoded as UTF-8 (a lone surrogate), or None; O(1) for ASCII strings."""
    if text.isascii():
        return None
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"contains a lone UTF-16 surrogate (U+{ord(found.group()):04X}) at character {found.start()}; "
        "send valid Unicode"
    )


def _valid_unicode(text: str) -> str:
    problem = unicode_problem(text)
    if problem:
        raise ValueError(problem)
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]


def _non_empty(texts: list[str], field: str) -> list[str]:
    for i, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"{field}[{i}] is empty")
        problem = unicode_problem(text)
        if problem:
            raise ValueError(f"{field}[{i}] {problem}")
    return texts


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inputs: str | list[str] = Field(description="One text or a list of texts")
    normalize: bool = True
    truncate: bool = True
    truncation_direction: Literal["right", "left"] = "right"

    _direction = field_validator("truncation_direction", mode="before")(_lower)

    @field_validator("inputs")
    @classmethod
    def _check(cls, v: str | list[str]) -> str | list[str]:
        _non_empty([v] if isinstance(v, str) else v, "inputs")
        return v

    def texts(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else self.inputs


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: Text = Field(min_length=1)
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    top_n: int | None = Field(default=None, ge=1, le=MAX_TOP_N)
    truncate: bool = True
    truncation_direction: Literal["right", "left"] = "right"

    _direction = field_validator("truncation_direction", mode="before")(_lower)

    @field_validator("texts")
    @classmethod
    def _check(cls, v: list[str]) -> list[str]:
        return _non_empty(v, "texts")


class RankItem(BaseModel):
    index: int
    score: float
    text: str | None = None


class OpenAIEmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: str | list[str]
    model: Text | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    user: Text | None = None

    @field_validator("input")
    @classmethod
    def _check(cls, v: str | list[str]) -> str | list[str]:
        _non_empty([v] if isinstance(v, str) else v, "input")
        return v

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: Usage


class TextDocument(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str


class CohereRerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: Text = Field(min_length=1)
    documents: list[str | TextDocument]
    top_n: int | None = Field(default=None, ge=1, le=MAX_TOP_N)
    return_documents: bool = False
    model: Text | None = None

    @field_validator("documents")
    @classmethod
    def _check(cls, v: list[str | TextDocument]) -> list[str | TextDocument]:
        _non_empty([d if isinstance(d, str) else d.text for d in v], "documents")
        return v

    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


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


class ErrorBody(BaseModel):
    error: str
    error_type: ErrorType
