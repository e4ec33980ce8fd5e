"""HTTP routes: parse, call the engine, shape the answer. No model logic here."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ml_api.api import schemas
from ml_api.core.errors import Overloaded, ValidationFailed, error_response
from ml_api.core.metrics import REGISTRY
from ml_api.embedding import normalize_rows
from ml_api.engine import Engine, Timing, rerank_scores

router = APIRouter()
T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.ErrorBody} for code in (400, 401, 413, 415, 422, 429, 503)
}


def _responses(ok: Any) -> dict[int | str, dict[str, Any]]:
    """OpenAPI docs for the 200 shape; the body itself is written by orjson, not by these models."""
    return {200: {"model": ok}, **_ERRORS}


def _ranked(scores: np.ndarray, top_n: int | None) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[:top_n]


class ClientGone(Exception):
    """The client closed the connection; its queued items were dropped before inference."""


def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work` but cancel it (and so drop its queued items) as soon as the client goes away."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    raise ClientGone


def _json(content: Any, timing: Timing | None = None) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json", headers=timing.headers() if timing else None)


async def _guarded(request: Request, work: Coroutine[Any, Any, T]) -> T | Response:
    engine = _engine(request)
    try:
        engine.acquire()
    except Overloaded:
        work.close()  # never started: no "coroutine was never awaited" warning
        raise
    try:
        return await _unless_disconnected(request, work)
    except ClientGone:
        return error_response(499, "validation", "client closed the request")
    finally:
        engine.release()


@router.post("/embed", responses=_responses(list[list[float]]), tags=["TEI"])
async def embed(body: schemas.EmbedRequest, request: Request) -> Response:
    """TEI `/embed`: a list of vectors, one per input."""
    timing = Timing()
    engine = _engine(request)
    result = await _guarded(
        request,
        engine.embed(
            body.texts(),
            normalize=body.normalize,
            truncate=body.truncate,
            direction=body.truncation_direction,
            timing=timing,
        ),
    )
    return result if isinstance(result, Response) else _json(result, timing)


@router.post("/rerank", responses=_responses(list[schemas.RankItem]), tags=["TEI"])
async def rerank(body: schemas.RerankRequest, request: Request) -> Response:
    """TEI `/rerank`: `[{index, score, text?}]`, highest score first."""
    timing = Timing()
    engine = _engine(request)
    logits = await _guarded(request, engine.rerank(body.query, body.texts, truncate=body.truncate, timing=timing))
    if isinstance(logits, Response):
        return logits
    scores = rerank_scores(logits, body.raw_scores)
    order = _ranked(scores, body.top_n)
    items = [
        {"index": int(i), "score": float(scores[i]), **({"text": body.texts[i]} if body.return_text else {})}
        for i in order
    ]
    return _json(items, timing)


@router.post("/v1/embeddings", responses=_responses(schemas.OpenAIEmbeddingResponse), tags=["OpenAI"])
async def openai_embeddings(body: schemas.OpenAIEmbeddingRequest, request: Request) -> Response:
    """OpenAI embeddings: works with the official client (which asks for base64 by default)."""
    timing = Timing()
    engine = _engine(request)
    dims = body.dimensions
    if dims is not None and dims > engine.embedder.dimension:
        raise ValidationFailed(f"dimensions={dims} exceeds the model's {engine.embedder.dimension}")
    matrix = await _guarded(request, engine.embed(body.texts(), normalize=True, timing=timing))
    if isinstance(matrix, Response):
        return matrix
    if dims is not None and dims < matrix.shape[1]:
        matrix = normalize_rows(matrix[:, :dims])  # Matryoshka-style: cut, then renormalise
    if body.encoding_format == "base64":
        data = [
            {"object": "embedding", "index": i, "embedding": base64.b64encode(row.astype("<f4").tobytes()).decode()}
            for i, row in enumerate(matrix)
        ]
    else:
        data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(matrix)]
    return _json(
        {
            "object": "list",
            "data": data,
            "model": body.model or engine.embed_name,
            "usage": {"prompt_tokens": timing.tokens, "total_tokens": timing.tokens},
        },
        timing,
    )


@router.post("/v1/rerank", responses=_responses(schemas.CohereRerankResponse), tags=["Cohere/Jina"])
async def cohere_rerank(body: schemas.CohereRerankRequest, request: Request) -> Response:
    """Cohere/Jina rerank: `{results: [{index, relevance_score, document?}], model, usage}`."""
    timing = Timing()
    engine = _engine(request)
    texts = body.texts()
    logits = await _guarded(request, engine.rerank(body.query, texts, timing=timing))
    if isinstance(logits, Response):
        return logits
    scores = rerank_scores(logits, raw=False)
    order = _ranked(scores, body.top_n)
    results = [
        {
            "index": int(i),
            "relevance_score": float(scores[i]),
            **({"document": {"text": texts[i]}} if body.return_documents else {}),
        }
        for i in order
    ]
    return _json(
        {"results": results, "model": body.model or engine.rerank_name, "usage": {"total_tokens": timing.tokens}},
        timing,
    )


@router.get("/health", tags=["ops"])
async def health(request: Request) -> Response:
    """200 only when a real forward pass of both models succeeds."""
    engine: Engine | None = getattr(request.app.state, "engine", None)
    if engine is None:
        return error_response(503, "unhealthy", "models are not loaded")
    try:
        status = await engine.health()
    except TimeoutError:
        return error_response(503, "unhealthy", f"forward pass did not finish in {engine.settings.health_timeout_s}s")
    except Exception as exc:
        return error_response(503, "unhealthy", f"forward pass failed: {exc}")
    return _json({"status": "ok", **status})


@router.get("/info", tags=["ops"])
async def info(request: Request) -> Response:
    from ml_api import __version__

    return _json({"version": __version__, **_engine(request).info()})


@router.get("/metrics", tags=["ops"])
async def prometheus_metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
