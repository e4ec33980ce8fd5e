"""Both models, their batchers and the admission limit: what the routes call, nothing HTTP in here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ml_api.batching import Batcher, BatchTiming
from ml_api.core import metrics
from ml_api.core.config import Settings
from ml_api.core.errors import APIError, Overloaded, ValidationFailed
from ml_api.device import DevicePlan, detect
from ml_api.embedding import Direction, Embedder, TooLong, is_oom, normalize_rows
from ml_api.models import ModelError, resolve_embedder, resolve_reranker
from ml_api.reranking import PairTooLong, Reranker, sigmoid

log = logging.getLogger("ml_api.engine")
T = TypeVar("T")


@dataclass(slots=True)
class Timing:
    tokenization_s: float = 0.0
    batch: BatchTiming = field(default_factory=BatchTiming)
    tokens: int = 0

    def headers(self) -> dict[str, str]:
        return {
            "x-tokenization-time": f"{self.tokenization_s * 1000:.2f}",
            "x-queue-time": f"{self.batch.queue_s * 1000:.2f}",
            "x-inference-time": f"{self.batch.inference_s * 1000:.2f}",
            "x-compute-tokens": str(self.tokens),
        }


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.plan: DevicePlan = detect(settings.device, settings.rerank_fp16)
        models_dir = Path(settings.models_dir)
        started = time.perf_counter()
        self.embedder = Embedder(
            resolve_embedder(settings.embed_model, models_dir), self.plan, settings.ort_intra_op_threads
        )
        self.reranker = Reranker(resolve_reranker(settings.rerank_model), self.plan, settings.rerank_max_length)
        self.max_batch_tokens = settings.max_batch_tokens or (16384 if self.plan.device == "cuda" else 4096)
        for model, limit in ((self.embedder, self.embedder.max_length), (self.reranker, self.reranker.max_length)):
            if self.max_batch_tokens < limit:
                raise ModelError(f"MAX_BATCH_TOKENS={self.max_batch_tokens} is below {model.name}'s max length {limit}")
        self.embed_name = settings.embed_model_name or self.embedder.name
        self.rerank_name = settings.rerank_model_name or self.reranker.name
        batching = {
            "max_batch_tokens": self.max_batch_tokens,
            "max_batch_size": settings.max_batch_size,
            "padding_split_tokens": settings.padding_split_tokens,
            "sort_window_tokens": settings.sort_window_tokens,
        }
        self.embed_batcher: Batcher = Batcher("embed", self.embedder.forward_rows, is_oom=is_oom, **batching)
        self.rerank_batcher: Batcher = Batcher("rerank", self.reranker.forward, is_oom=self.reranker.is_oom, **batching)
        self.in_flight = 0
        self.load_seconds = time.perf_counter() - started
        log.info(
            "models loaded",
            extra={
                "fields": {
                    "embed": str(self.embedder.path),
                    "rerank": str(self.reranker.path),
                    "device": self.plan.device,
                    "reason": self.plan.reason,
                    "providers": self.embedder.providers,
                    "seconds": round(self.load_seconds, 2),
                }
            },
        )

    def start(self) -> None:
        self.embed_batcher.start()
        self.rerank_batcher.start()

    async def stop(self) -> None:
        await asyncio.gather(self.embed_batcher.stop(), self.rerank_batcher.stop())

    def acquire(self) -> None:
        """Bound the work in the building: past MAX_CONCURRENT_REQUESTS we answer 429 instead of queueing forever."""
        if self.in_flight >= self.settings.max_concurrent_requests:
            limit = self.settings.max_concurrent_requests
            raise Overloaded(f"{self.in_flight} requests in flight (MAX_CONCURRENT_REQUESTS={limit}); retry later")
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()

    def release(self) -> None:
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()

    def check_batch(self, count: int, what: str) -> None:
        if count == 0:
            raise ValidationFailed(f"`{what}` must not be empty")
        if count > self.settings.max_client_batch_size:
            raise ValidationFailed(
                f"`{what}` has {count} items, more than MAX_CLIENT_BATCH_SIZE={self.settings.max_client_batch_size}; "
                "send smaller batches",
                status=413,
            )

    async def embed(
        self,
        texts: list[str],
        *,
        normalize: bool = True,
        truncate: bool = True,
        direction: Direction = "right",
        timing: Timing | None = None,
    ) -> np.ndarray:
        timing = timing or Timing()
        self.check_batch(len(texts), "inputs")
        ids = await self._tokenize("embed", timing, self.embedder.tokenize, texts, truncate, direction)
        lengths = [len(r) for r in ids]
        timing.tokens = sum(lengths)
        rows = await self._submit(self.embed_batcher, ids, lengths, timing.batch)
        matrix = np.vstack(rows)
        return normalize_rows(matrix) if normalize else matrix

    async def rerank(
        self, query: str, texts: list[str], *, truncate: bool = True, timing: Timing | None = None
    ) -> np.ndarray:
        """Raw logits in input order; callers apply sigmoid when they want 0..1 scores."""
        timing = timing or Timing()
        self.check_batch(len(texts), "texts")
        pairs = await self._tokenize("rerank", timing, self.reranker.tokenize, query, texts, truncate)
        lengths = [len(p.input_ids) for p in pairs]
        timing.tokens = sum(lengths)
        scores = await self._submit(self.rerank_batcher, pairs, lengths, timing.batch)
        return np.asarray(scores, dtype=np.float64)

    @staticmethod
    async def _tokenize(model: str, timing: Timing, tokenize: Callable[..., list[T]], *args: Any) -> list[T]:
        """Tokenise on a worker thread; an input over the model's length (truncate=false) is a 413."""
        t0 = time.perf_counter()
        try:
            items = await asyncio.to_thread(tokenize, *args)
        except (TooLong, PairTooLong) as exc:
            raise ValidationFailed(str(exc), status=413) from exc
        timing.tokenization_s = time.perf_counter() - t0
        metrics.TOKENIZATION.labels(model).observe(timing.tokenization_s)
        return items

    @staticmethod
    async def _submit(batcher: Batcher, payloads: list, lengths: list[int], timing: BatchTiming) -> list:
        try:
            return await batcher.submit(payloads, lengths, timing)
        except (asyncio.CancelledError, APIError):
            raise
        except Exception as exc:
            raise APIError(503 if is_oom(exc) else 500, "backend", f"{batcher.name} inference failed: {exc}") from exc

    async def health(self) -> dict[str, str]:
        """A real forward pass through each model's queue; raises with the reason when one fails."""

        async def check() -> None:
            vec = await self.embed(["health check"])
            if vec.shape != (1, self.embedder.dimension) or not np.isfinite(vec).all():
                raise RuntimeError(f"embedder returned {vec.shape} or non-finite values")
            score = await self.rerank("health", ["check"])
            if score.shape != (1,) or not np.isfinite(score).all():
                raise RuntimeError("reranker returned a non-finite score")

        await asyncio.wait_for(check(), timeout=self.settings.health_timeout_s)
        return {"embed": "ok", "rerank": "ok"}

    def info(self) -> dict:
        s = self.settings
        return {
            "embedding": {
                "model": self.embed_name,
                "path": str(self.embedder.path),
                "dimension": self.embedder.dimension,
                "max_length": self.embedder.max_length,
                "pooling": self.embedder.pooling,
                "providers": self.embedder.providers,
                "device": self.embedder.device,
            },
            "reranking": {
                "model": self.rerank_name,
                "path": str(self.reranker.path),
                "max_length": self.reranker.max_length,
                "device": self.reranker.device,
                "fp16": self.reranker.fp16,
            },
            "device": self.plan.device,
            "device_reason": self.plan.reason,
            "batching": {
                "max_batch_tokens": self.max_batch_tokens,
                "max_batch_size": s.max_batch_size,
                "padding_split_tokens": s.padding_split_tokens,
                "sort_window_tokens": s.sort_window_tokens,
                "max_concurrent_requests": s.max_concurrent_requests,
                "max_client_batch_size": s.max_client_batch_size,
                "over_client_batch": "413",
                "max_request_bytes": s.max_request_bytes,
            },
            "queue": {
                "embed": self.embed_batcher.queue_size,
                "rerank": self.rerank_batcher.queue_size,
                "in_flight": self.in_flight,
            },
            "load_seconds": round(self.load_seconds, 2),
        }


def rerank_scores(logits: np.ndarray, raw: bool) -> np.ndarray:
    return logits if raw else sigmoid(logits)
