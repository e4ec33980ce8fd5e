"""Cohere's embedding types, computed from the float vectors: pure numpy, nothing HTTP.

Cohere's embed API returns each requested type side by side (`embedding_types`); its reference says what each
holds but not how int8 is calibrated (its models are trained to emit int8 natively), so each formula here is
either the one Cohere's ecosystem agrees on or a deterministic scheme chosen and stated:

- `float`: the (unit-length) float32 vectors themselves.
- `binary` / `ubinary`: one bit per dimension, 1 where the value is > 0, packed eight to a byte, first dimension
  in the high bit (`np.packbits`); `ubinary` is that byte (0..255), `binary` the byte minus 128 as int8
  (-128..127). This is sentence-transformers' `quantize_embeddings(..., "ubinary"/"binary")`, which follows
  Cohere's definition (tests/test_cohere.py checks against it); vLLM's Cohere `/v2/embed` packs the same way but
  sets the bit for x >= 0, which differs only at exactly 0. A width that is not a multiple of 8 (an
  `output_dimension` cut) is padded with 0 bits: ceil(dim / 8) bytes.
- `int8`: round(127 * x) of the unit vector, clipped to [-1, 1]; `uint8` is int8 + 128 (1..255). Every
  component of a unit vector lies in [-1, 1], so nothing is clipped, and one fixed scale for every vector keeps
  dot products comparable across vectors (int8 . int8 ~ 127^2 * cosine) and each text's vector independent of
  whatever else was in its batch. sentence-transformers' scheme instead calibrates per-dimension min/max on a
  corpus (by default the batch itself: the same text would quantise differently from one request to the next)
  and truncates rather than rounds. The error is at most 1/254 per component: the dequantised vector q / 127
  keeps a cosine of about 0.999 (at least 0.998) with the float one for a 384-dimension model; the wider the
  model, the smaller its components and the larger that relative error (tests/test_cohere.py).
- `base64`: base64 of the float32 little-endian bytes of each vector (Cohere's "float embedding bytes appended
  and base64-encoded"; vLLM's `_encode_base64_embeddings`), as OpenAI's `encoding_format: base64`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Literal, get_args

import numpy as np

from ml_api.errors import InvalidInput

EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]
EMBEDDING_TYPES: tuple[str, ...] = get_args(EmbeddingType)
INT8_SCALE = 127  # int8 = round(127 x): symmetric, so 0 stays 0 and -x gives -q
UNSIGNED_OFFSET = 128  # uint8 = int8 + 128 and ubinary = binary + 128, as Cohere's signed/unsigned pairs


def to_float(matrix: np.ndarray) -> np.ndarray:
    """Contiguous, as orjson serialises only C-contiguous arrays (a column cut of a matrix is not)."""
    return np.ascontiguousarray(matrix, dtype=np.float32)


def to_int8(matrix: np.ndarray) -> np.ndarray:
    """round(127 x), clipped to [-1, 1] first: -127..127 for unit vectors."""
    return np.rint(np.clip(matrix, -1.0, 1.0) * INT8_SCALE).astype(np.int8)


def to_uint8(matrix: np.ndarray) -> np.ndarray:
    return (to_int8(matrix).astype(np.int16) + UNSIGNED_OFFSET).astype(np.uint8)


def to_ubinary(matrix: np.ndarray) -> np.ndarray:
    """Bits of x > 0, eight to a byte, first dimension in the high bit."""
    return np.packbits(np.asarray(matrix) > 0, axis=-1)


def to_binary(matrix: np.ndarray) -> np.ndarray:
    return (to_ubinary(matrix).astype(np.int16) - UNSIGNED_OFFSET).astype(np.int8)


def to_base64(matrix: np.ndarray) -> list[str]:
    return [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in matrix]


CONVERSIONS: dict[str, Callable[[np.ndarray], np.ndarray | list[str]]] = {
    "float": to_float,
    "int8": to_int8,
    "uint8": to_uint8,
    "binary": to_binary,
    "ubinary": to_ubinary,
    "base64": to_base64,
}


def by_type(matrix: np.ndarray, types: list[str]) -> dict[str, np.ndarray | list[str]]:
    """Each requested type (in request order, once each) computed from the float rows of `matrix`."""
    unknown = [t for t in types if t not in CONVERSIONS]
    if unknown:
        raise InvalidInput(f"unknown embedding types {unknown}; known: {', '.join(EMBEDDING_TYPES)}")
    return {t: CONVERSIONS[t](matrix) for t in dict.fromkeys(types)}
