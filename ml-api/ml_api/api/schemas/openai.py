"""OpenAI's request and response shapes (/v1/embeddings, /v1/models)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_api.api.schemas.common import MAX_DIMENSIONS, Inputs, Text, as_batch, check_inputs


class OpenAIEmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: Inputs = Field(description="A text, a list of texts, a list of token ids, or a list of such lists")
    model: Text | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    user: Text | None = None
    truncate: bool = Field(True, description="Cut over-length inputs to the model's length (false: 413)")

    @field_validator("input", mode="before")
    @classmethod
    def _check(cls, v: Inputs) -> Inputs:
        return check_inputs(v, "input")

    def batch(self) -> list[str] | list[list[int]]:
        return as_batch(self.input)


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


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
