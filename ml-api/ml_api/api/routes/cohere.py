"""Cohere's v1 and v2 embed and rerank, which the official `cohere` client calls unchanged, and Jina's `/v1/rerank`.

Every family gets the engine's numbers (relevance = sigmoid(logit) in 0..1, unit-length vectors); these routes
only reshape them, and `ml_api.embedding_types` turns the float vectors into Cohere's other embedding types.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ml_api.api.deps import EngineDep
from ml_api.api.routes.common import guarded, json_response, responses
from ml_api.api.schemas import cohere as schemas
from ml_api.embedding_types import by_type
from ml_api.engine import Engine, RerankSlot, Timing
from ml_api.errors import InvalidInput

router = APIRouter(tags=["Cohere/Jina"])


def _meta(version: str, **billed: int) -> dict[str, Any]:
    return {"api_version": {"version": version}, "billed_units": billed}


async def _rerank(
    body: schemas.CohereRerankRequest,
    request: Request,
    engine: Engine,
    slot: RerankSlot,
    timing: Timing,
    max_doc_tokens: int | None,
) -> list[dict[str, Any]]:
    texts = body.texts()
    ranked = await guarded(
        request,
        engine,
        engine.rerank(
            body.query, texts, model=slot.name, top_n=body.top_n, max_doc_tokens=max_doc_tokens, timing=timing
        ),
        slot,
    )
    return [
        {
            "index": r.index,
            "relevance_score": r.score,
            **({"document": {"text": texts[r.index]}} if body.return_documents else {}),
        }
        for r in ranked
    ]


@router.post("/v1/rerank", responses=responses(schemas.CohereRerankResponse, "openai"))
async def cohere_rerank(body: schemas.CohereRerankRequest, request: Request, engine: EngineDep) -> Response:
    """Cohere v1/Jina rerank: `{results: [{index, relevance_score, document?}], model, usage}`."""
    timing, slot = Timing(), engine.reranking(body.model)
    results = await _rerank(body, request, engine, slot, timing, None)
    return json_response(
        {"results": results, "model": slot.name, "usage": {"total_tokens": timing.tokens}},  # the model that answered
        timing,
    )


@router.post("/v2/rerank", responses=responses(schemas.CohereV2RerankResponse, "openai"))
async def cohere_v2_rerank(body: schemas.CohereV2RerankRequest, request: Request, engine: EngineDep) -> Response:
    """Cohere v2 rerank: `{id, results: [{index, relevance_score, document?}], meta}`, best first.

    `max_tokens_per_doc` cuts each document alone to its first that many tokens, as Cohere does; a document
    still longer than the model's window is cut there (Cohere would score its chunks and keep the best).
    """
    timing = Timing()
    results = await _rerank(body, request, engine, engine.reranking(body.model), timing, body.max_tokens_per_doc)
    return json_response({"id": str(uuid.uuid4()), "results": results, "meta": _meta("2", search_units=1)}, timing)


async def _embed(
    body: schemas.CohereEmbedRequest, request: Request, engine: Engine, types: list[str]
) -> tuple[dict[str, Any], Timing]:
    """The requested types of the unit vectors; `input_type` is ignored, as the model has no per-task prompts."""
    slot = engine.embedding(body.model)
    width, max_length = slot.model.dimension, slot.model.max_length
    if body.output_dimension is not None and body.output_dimension > width:
        raise InvalidInput(f"output_dimension={body.output_dimension} exceeds the model's {width} dimensions")
    if body.max_tokens is not None and body.max_tokens < max_length:
        raise InvalidInput(
            f"max_tokens={body.max_tokens} is below the model's max length {max_length}, which this server cannot "
            "lower per request; leave max_tokens out (inputs are cut at the model's length) or shorten the texts"
        )
    timing = Timing()
    matrix = await guarded(
        request,
        engine,
        engine.embed(
            body.texts,
            model=slot.name,
            normalize=True,
            truncate=body.truncate != "NONE",
            direction="left" if body.truncate == "START" else "right",
            dimensions=body.output_dimension,
            timing=timing,
        ),
        slot,
    )
    return by_type(matrix, types), timing


def _by_type(body: schemas.CohereEmbedRequest, embeddings: dict[str, Any], version: str, tokens: int) -> Any:
    return {
        "id": str(uuid.uuid4()),
        "embeddings": embeddings,
        "texts": body.texts,
        "meta": _meta(version, input_tokens=tokens),
        "response_type": "embeddings_by_type",
    }


@router.post("/v2/embed", responses=responses(schemas.CohereEmbedByTypeResponse, "openai"))
async def cohere_v2_embed(body: schemas.CohereEmbedRequest, request: Request, engine: EngineDep) -> Response:
    """Cohere v2 embed: `{id, embeddings: {<type>: [...]}, texts, meta}`, float unless `embedding_types` says."""
    embeddings, timing = await _embed(body, request, engine, body.embedding_types or ["float"])
    return json_response(_by_type(body, embeddings, "2", timing.tokens), timing)


@router.post("/v1/embed", responses=responses(schemas.CohereV1EmbedResponse, "openai"))
async def cohere_v1_embed(body: schemas.CohereEmbedRequest, request: Request, engine: EngineDep) -> Response:
    """Cohere v1 embed: float lists (`embeddings_floats`), or v2's by-type shape when `embedding_types` is sent."""
    embeddings, timing = await _embed(body, request, engine, body.embedding_types or ["float"])
    content = _by_type(body, embeddings, "1", timing.tokens)
    if body.embedding_types is None:
        content.update(embeddings=embeddings["float"], response_type="embeddings_floats")
    return json_response(content, timing)
