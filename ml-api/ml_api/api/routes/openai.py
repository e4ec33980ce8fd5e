"""OpenAI's `/v1/embeddings` and `/v1/models`: what the official client and LangChain's OpenAIEmbeddings call."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ml_api.api.deps import EngineDep
from ml_api.api.fast import FastRoute
from ml_api.api.routes.common import guarded, json_response, responses
from ml_api.api.schemas import openai as schemas
from ml_api.embedding_types import to_base64
from ml_api.engine import Engine, Timing
from ml_api.errors import NotFound

router = APIRouter(tags=["OpenAI"])


@router.post("/v1/embeddings", responses=responses(schemas.OpenAIEmbeddingResponse, "openai"))
async def openai_embeddings(body: schemas.OpenAIEmbeddingRequest, request: Request, engine: EngineDep) -> Response:
    """OpenAI embeddings: works with the official client (which asks for base64 by default).

    `input` may be token ids, as OpenAI, TEI and vLLM accept: in the served embedder's vocabulary (see /tokenize),
    used as given. `truncate` (ours; default true) decides what over-length input gets: cut, or a 413.
    """
    return await _embeddings(body, request, engine)


async def _embeddings(
    body: schemas.OpenAIEmbeddingRequest, request: Request, engine: Engine, _model_query: str | None = None
) -> Response:
    timing = Timing()
    slot = engine.embedding(body.model)
    matrix = await guarded(
        request,
        engine,
        engine.embed(
            body.batch(),
            model=slot.name,
            normalize=True,
            truncate=body.truncate,
            dimensions=body.dimensions,
            timing=timing,
        ),
        slot,
    )
    rows = to_base64(matrix) if body.encoding_format == "base64" else matrix
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": slot.name,  # the model that answered, never the name asked for
            "usage": {"prompt_tokens": timing.tokens, "total_tokens": timing.tokens},
        },
        timing,
    )


# What the backend calls for every query: answered by ml_api.api.fast when the body validates (no query string).
FAST = {"/v1/embeddings": FastRoute(schemas.OpenAIEmbeddingRequest, _embeddings, model_query=False)}


def _models(engine: Engine) -> list[dict]:
    """Every served model under the id responses report, with OpenAI's fields first and ours (kind, dims...) after."""
    return [
        {"id": m["id"], "object": "model", "created": engine.started_at, "owned_by": "ml-api", **m}
        for m in engine.models()
    ]


@router.get("/v1/models", responses=responses(schemas.ModelList, "openai"))
async def list_models(engine: EngineDep) -> Response:
    """`client.models.list()`: every served embedder and reranker (kind, dimensions, max tokens, dtype, device)."""
    return json_response({"object": "list", "data": _models(engine)})


@router.get("/v1/models/{model_id:path}", responses=responses(schemas.Model, "openai", extra=(404,)))
async def retrieve_model(model_id: str, engine: EngineDep) -> Response:
    """`client.models.retrieve(id)`: one served model, or 404 naming the ones served."""
    for model in _models(engine):
        if model["id"] == model_id:
            return json_response(model)
    served = ", ".join(m["id"] for m in _models(engine))
    raise NotFound(f"model {model_id!r} is not served here; served: {served}")
