"""OpenAI's `/v1/embeddings`: works with the official client, which asks for base64 by default."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Request
from starlette.responses import Response

from ml_api.api import schemas
from ml_api.api.deps import EngineDep
from ml_api.api.routes.common import guarded, json_response, responses
from ml_api.engine import Timing

router = APIRouter(tags=["OpenAI"])


@router.post("/v1/embeddings", responses=responses(schemas.OpenAIEmbeddingResponse))
async def openai_embeddings(body: schemas.OpenAIEmbeddingRequest, request: Request, engine: EngineDep) -> Response:
    """OpenAI embeddings: works with the official client (which asks for base64 by default)."""
    timing = Timing()
    matrix = await guarded(
        request, engine, engine.embed(body.texts(), normalize=True, dimensions=body.dimensions, timing=timing)
    )
    if body.encoding_format == "base64":
        data = [
            {"object": "embedding", "index": i, "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode()}
            for i, row in enumerate(matrix)
        ]
    else:
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(matrix)]
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": body.model or engine.embed_name,
            "usage": {"prompt_tokens": timing.tokens, "total_tokens": timing.tokens},
        },
        timing,
    )
