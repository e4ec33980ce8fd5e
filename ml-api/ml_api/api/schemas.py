"""Request/response shapes of TEI (/embed, /rerank), OpenAI (/v1/embeddings) and Cohere/Jina (/v1/rerank)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_api.api.errors import ErrorType


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _non_empty(texts: list[str], field: str) -> list[str]:
    for i, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"{field}[{i}] is empty")
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
    query: str = Field(min_length=1)
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    top_n: int | None = Field(default=None, ge=1)
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
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

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
    query: str = Field(min_length=1)
    documents: list[str | TextDocument]
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    model: str | None = None

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
