"""Cohere's and Jina's `/v1/rerank`: `{results, model, usage}`, relevance scores in 0..1."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ml_api.api import schemas
from ml_api.api.deps import EngineDep
from ml_api.api.routes.common import guarded, json_response, responses
from ml_api.engine import Timing

router = APIRouter(tags=["Cohere/Jina"])


@router.post("/v1/rerank", responses=responses(schemas.CohereRerankResponse))
async def cohere_rerank(body: schemas.CohereRerankRequest, request: Request, engine: EngineDep) -> Response:
    """Cohere/Jina rerank: `{results: [{index, relevance_score, document?}], model, usage}`."""
    timing = Timing()
    texts = body.texts()
    ranked = await guarded(request, engine, engine.rerank(body.query, texts, top_n=body.top_n, timing=timing))
    results = [
        {
            "index": r.index,
            "relevance_score": r.score,
            **({"document": {"text": texts[r.index]}} if body.return_documents else {}),
        }
        for r in ranked
    ]
    return json_response(
        {"results": results, "model": body.model or engine.rerank_name, "usage": {"total_tokens": timing.tokens}},
        timing,
    )
