"""What every API family's shapes share: text validation, bounds, the error bodies.

Every text field refuses a lone UTF-16 surrogate (`"\\ud800"` is valid JSON but no Unicode text) with a 422
naming the field, index and position: TEI's serde_json refuses such JSON too, and replacing it with U+FFFD would
embed something other than what the client sent. NUL and other control characters are valid text and pass (the
tokenizers' normalisers drop them). Every number has bounds, so OpenAPI shows them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, Strict

from ml_api.api.errors import ErrorType

MAX_TOP_N = 100_000  # above any client batch: top_n past the number of texts returns them all
MAX_DIMENSIONS = 65_536  # above any model's width; the engine refuses more than the loaded model has
_SURROGATE = re.compile("[\ud800-\udfff]")


def lower(value: object) -> object:
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


def non_empty(texts: list[str], field: str) -> list[str]:
    for i, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"{field}[{i}] is empty")
        problem = unicode_problem(text)
        if problem:
            raise ValueError(f"{field}[{i}] {problem}")
    return texts


MAX_TOKEN_ID = 2**32 - 1  # TEI's u32; the engine refuses ids outside the loaded vocabulary
TokenId = Annotated[int, Strict(), Field(ge=0, le=MAX_TOKEN_ID)]  # strict: `true` is not token 1
TokenIds = Annotated[list[TokenId], Field(min_length=1)]
# What OpenAI, TEI and vLLM accept as embedding input: text(s) or already-tokenised input(s).
Inputs = str | list[str] | TokenIds | list[TokenIds]


_INPUTS = "a text, a list of texts, a list of token ids, or a list of lists of token ids"


def _ids_problem(row: list[Any]) -> str | None:
    if not row:
        return " is an empty list of token ids"
    for j, token in enumerate(row):
        if type(token) is not int:  # bool is an int subclass, and `true` is no token id
            return f"[{j}] is not a token id (an integer)"
        if not 0 <= token <= MAX_TOKEN_ID:
            return f"[{j}] = {token} is not a token id (0..{MAX_TOKEN_ID})"
    return None


def check_inputs(value: Any, field: str) -> Any:
    """One reason for a malformed input instead of four union branches' (run before the union's validation).

    Texts must be non-empty valid Unicode; token ids non-negative integers, checked against the vocabulary
    by the engine. A batch is all texts or all id lists.
    """
    if isinstance(value, str):
        non_empty([value], field)
        return value
    if not isinstance(value, list):
        raise ValueError(f"{field} must be {_INPUTS}")
    if not value:
        return value  # the engine refuses an empty batch, the same way for every route
    if all(isinstance(v, str) for v in value):
        non_empty(value, field)
    elif all(isinstance(v, list) for v in value):
        for i, row in enumerate(value):
            problem = _ids_problem(row)
            if problem:
                raise ValueError(f"{field}[{i}]{problem}")
    elif not any(isinstance(v, str | list) for v in value):
        problem = _ids_problem(value)
        if problem:
            raise ValueError(f"{field}{problem}")
    else:
        raise ValueError(f"{field} must be {_INPUTS}, not a mix")
    return value


def as_batch(value: Any) -> list[str] | list[list[int]]:
    """One input (a text or one id list) becomes a batch of one; a batch stays as it is."""
    if isinstance(value, str) or (value and isinstance(value[0], int)):
        return [value]
    return value


class ErrorBody(BaseModel):
    error: str
    error_type: ErrorType


class OpenAIError(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """Every error under /v1/ and /v2/: OpenAI's shape, which the openai and cohere clients read."""

    error: OpenAIError
