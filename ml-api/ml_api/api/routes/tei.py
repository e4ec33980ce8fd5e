"""TEI's `/embed` and `/rerank`: the shapes text-embeddings-inference clients already send and read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ml_api.api import schemas
from ml_api.api.deps import EngineDep
from ml_api.api.routes.common import guarded, json_response, responses
from ml_api.engine import Timing

router = APIRouter(tags=["TEI"])


@router.post("/embed", responses=responses(list[list[float]]))
async def embed(body: schemas.EmbedRequest, request: Request, engine: EngineDep) -> Response:
    """TEI `/embed`: a list of vectors, one per input."""
    timing = Timing()
    matrix = await guarded(
        request,
        engine,
        engine.embed(
            body.texts(),
            normalize=body.normalize,
            truncate=body.truncate,
            direction=body.truncation_direction,
            timing=timing,
        ),
    )
    return json_response(matrix, timing)


@router.post("/rerank", responses=responses(list[schemas.RankItem]))
async def rerank(body: schemas.RerankRequest, request: Request, engine: EngineDep) -> Response:
    """TEI `/rerank`: `[{index, score, text?}]`, highest score first."""
    timing = Timing()
    ranked = await guarded(
        request,
        engine,
        engine.rerank(
            body.query, body.texts, raw_scores=body.raw_scores, top_n=body.top_n, truncate=body.truncate, timing=timing
        ),
    )
    items = [
        {"index": r.index, "score": r.score, **({"text": body.texts[r.index]} if body.return_text else {})}
        for r in ranked
    ]
    return json_response(items, timing)
