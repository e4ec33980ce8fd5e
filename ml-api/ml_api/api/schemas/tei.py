"""TEI's request and response shapes (text-embeddings-inference's router)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ml_api.api.schemas.common import (
    MAX_DIMENSIONS,
    MAX_TOP_N,
    Inputs,
    Text,
    TokenIds,
    as_batch,
    check_inputs,
    lower,
    non_empty,
)


def _no_prompts(value: str | None) -> str | None:
    if value is not None:
        raise ValueError("this model defines no prompts; leave prompt_name out")
    return value


class EmbedAllRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inputs: Inputs = Field(description="A text, a list of texts, a list of token ids, or a list of such lists")
    truncate: bool = True
    truncation_direction: Literal["right", "left"] = "right"
    prompt_name: str | None = None

    _direction = field_validator("truncation_direction", mode="before")(lower)
    _prompt = field_validator("prompt_name")(_no_prompts)

    @field_validator("inputs", mode="before")
    @classmethod
    def _check(cls, v: Inputs) -> Inputs:
        return check_inputs(v, "inputs")

    def batch(self) -> list[str] | list[list[int]]:
        return as_batch(self.inputs)


class EmbedRequest(EmbedAllRequest):
    normalize: bool = True
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inputs: str | list[str]
    add_special_tokens: bool = True
    prompt_name: str | None = None

    _prompt = field_validator("prompt_name")(_no_prompts)

    @field_validator("inputs")
    @classmethod
    def _check(cls, v: str | list[str]) -> str | list[str]:
        return check_inputs(v, "inputs")

    def batch(self) -> list[str]:
        return [self.inputs] if isinstance(self.inputs, str) else self.inputs


class SimpleToken(BaseModel):
    id: int
    text: str
    special: bool
    start: int | None = Field(description="Character offset in the input; null for special tokens")
    stop: int | None


class DecodeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    ids: TokenIds | list[TokenIds]
    skip_special_tokens: bool = True

    def batch(self) -> list[list[int]]:
        return [self.ids] if self.ids and isinstance(self.ids[0], int) else self.ids  # type: ignore[list-item,return-value]


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: Text = Field(min_length=1)
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    top_n: int | None = Field(default=None, ge=1, le=MAX_TOP_N)
    truncate: bool = True
    truncation_direction: Literal["right", "left"] = "right"

    _direction = field_validator("truncation_direction", mode="before")(lower)

    @field_validator("texts")
    @classmethod
    def _check(cls, v: list[str]) -> list[str]:
        return non_empty(v, "texts")


class RankItem(BaseModel):
    index: int
    score: float
    text: str | None = None
