"""TEI's routes: the shapes text-embeddings-inference clients (huggingface_hub's InferenceClient) send and read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from ml_api.api.deps import EngineDep
from ml_api.api.fast import FastRoute
from ml_api.api.routes.common import guarded, json_response, responses
from ml_api.api.schemas import tei as schemas
from ml_api.engine import Engine, Timing

router = APIRouter(tags=["TEI"])

# TEI serves one model per process and has no `model` field; with several served here, `?model=` picks one.
ModelQuery = Annotated[
    str | None, Query(description="Served model to use (`/v1/models` lists them); default: the first configured")
]


async def _embed(body: schemas.EmbedRequest, request: Request, engine: Engine, model: str | None) -> Response:
    timing, slot = Timing(), engine.embedding(model)
    matrix = await guarded(
        request,
        engine,
        engine.embed(
            body.batch(),
            model=slot.name,
            normalize=body.normalize,
            truncate=body.truncate,
            direction=body.truncation_direction,
            dimensions=body.dimensions,
            timing=timing,
        ),
        slot,
    )
    return json_response(matrix, timing)


async def _rerank(body: schemas.RerankRequest, request: Request, engine: Engine, model: str | None) -> Response:
    timing, slot = Timing(), engine.reranking(model)
    ranked = await guarded(
        request,
        engine,
        engine.rerank(
            body.query,
            body.texts,
            model=slot.name,
            raw_scores=body.raw_scores,
            top_n=body.top_n,
            truncate=body.truncate,
            timing=timing,
        ),
        slot,
    )
    items = [
        {"index": r.index, "score": r.score, **({"text": body.texts[r.index]} if body.return_text else {})}
        for r in ranked
    ]
    return json_response(items, timing)


# A search box's query and the backend's rerank: answered by ml_api.api.fast when the body validates.
FAST = {"/embed": FastRoute(schemas.EmbedRequest, _embed), "/rerank": FastRoute(schemas.RerankRequest, _rerank)}


@router.post("/", responses=responses(list[list[float]] | list[schemas.RankItem]))
async def predict(
    request: Request,
    engine: EngineDep,
    model: ModelQuery = None,
    body: schemas.EmbedRequest | schemas.RerankRequest = Body(),  # noqa: B008 (FastAPI's way to name a union body)
) -> Response:
    """TEI's root route, which `huggingface_hub.InferenceClient(base_url).feature_extraction` posts to.

    TEI answers it with whatever its one model does; we serve two, so the body decides: `{inputs}` embeds
    (as /embed), `{query, texts}` reranks (as /rerank).
    """
    if isinstance(body, schemas.RerankRequest):
        return await _rerank(body, request, engine, model)
    return await _embed(body, request, engine, model)


@router.post("/embed", responses=responses(list[list[float]]))
async def embed(body: schemas.EmbedRequest, request: Request, engine: EngineDep, model: ModelQuery = None) -> Response:
    """TEI `/embed`: a list of vectors, one per input (a text or a list of token ids)."""
    return await _embed(body, request, engine, model)


@router.post("/embed_all", responses=responses(list[list[list[float]]], extra=(501,)))
async def embed_all(
    body: schemas.EmbedAllRequest, request: Request, engine: EngineDep, model: ModelQuery = None
) -> Response:
    """TEI `/embed_all`: every token's vector before pooling, special tokens included, one matrix per input."""
    timing, slot = Timing(), engine.embedding(model)
    rows = await guarded(
        request,
        engine,
        engine.embed_all(
            body.batch(), model=slot.name, truncate=body.truncate, direction=body.truncation_direction, timing=timing
        ),
        slot,
    )
    return json_response(rows, timing)


@router.post("/rerank", responses=responses(list[schemas.RankItem]))
async def rerank(
    body: schemas.RerankRequest, request: Request, engine: EngineDep, model: ModelQuery = None
) -> Response:
    """TEI `/rerank`: `[{index, score, text?}]`, highest score first."""
    return await _rerank(body, request, engine, model)


@router.post("/tokenize", responses=responses(list[list[schemas.SimpleToken]]))
async def tokenize(
    body: schemas.TokenizeRequest, request: Request, engine: EngineDep, model: ModelQuery = None
) -> Response:
    """TEI `/tokenize`: the embedder's tokens for each input, with character offsets (no truncation)."""
    slot = engine.embedding(model)
    work = engine.tokenize(body.batch(), body.add_special_tokens, model=slot.name)
    return json_response(await guarded(request, engine, work, slot))


@router.post("/decode", responses=responses(list[str]))
async def decode(
    body: schemas.DecodeRequest, request: Request, engine: EngineDep, model: ModelQuery = None
) -> Response:
    """TEI `/decode`: token ids back to text with the embedder's tokenizer."""
    slot = engine.embedding(model)
    work = engine.decode(body.batch(), body.skip_special_tokens, model=slot.name)
    return json_response(await guarded(request, engine, work, slot))
