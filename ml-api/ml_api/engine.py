"""Both models, their batchers and the admission limit: what the routes call, nothing HTTP in here.

The numeric answer is finished here too (normalisation, the `dimensions` cut, sigmoid, ranking), so every
API family gets the same numbers and a route only reshapes them. Failures are `ml_api.errors` classes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ml_api import traces
from ml_api.args import EngineArgs
from ml_api.batching import Batcher, BatchTiming
from ml_api.core import metrics, tracing
from ml_api.device import DevicePlan, detect
from ml_api.embedding import Direction, Embedder, is_oom, normalize_rows
from ml_api.errors import BatchTooLarge, DomainError, InferenceFailed, InvalidInput, ModelError, Overloaded
from ml_api.registry import provenance, resolve_embedder, resolve_reranker
from ml_api.reranking import load_reranker, sigmoid

log = logging.getLogger("ml_api.engine")
T = TypeVar("T")


@dataclass(slots=True)
class Timing:
    """Where one request's time went; the edge turns it into x-*-time headers."""

    tokenization_s: float = 0.0
    batch: BatchTiming = field(default_factory=BatchTiming)
    tokens: int = 0


class Ranked(NamedTuple):
    index: int  # position in the request's texts
    score: float


def rank(scores: np.ndarray, top_n: int | None = None) -> list[Ranked]:
    """Highest first; ties keep input order (stable), so equal scores rank the same on every call."""
    order = np.argsort(-scores, kind="stable")[:top_n]
    return [Ranked(int(i), float(scores[i])) for i in order]


# One /embed_all answer is a float per token and dimension: 4M floats are about 45 MB of JSON.
EMBED_ALL_MAX_FLOATS = 4_000_000
INLINE_TOKENIZE_CHARS = 2048  # about 50 µs of tokenising on the event loop at most


def _chars(args: tuple[Any, ...]) -> int:
    """Characters a tokenize call will read: a query string and/or a list of texts."""
    total = 0
    for arg in args:
        if isinstance(arg, str):
            total += len(arg)
        elif isinstance(arg, list):
            total += sum(len(t) for t in arg if isinstance(t, str))
    return total


class Engine:
    """Built once in the app's lifespan; `start` needs the running event loop (the batchers' tasks)."""

    def __init__(self, args: EngineArgs) -> None:
        self.args = args
        self.plan: DevicePlan = detect(args.device, args.rerank_fp16)
        started = time.perf_counter()
        self.embedder = Embedder(
            resolve_embedder(args.embed_model, args.models_dir), self.plan, args.ort_intra_op_threads
        )
        self.reranker = load_reranker(
            resolve_reranker(args.rerank_model), self.plan, args.rerank_max_length, args.ort_intra_op_threads
        )
        self.max_batch_tokens = args.max_batch_tokens or (16384 if self.plan.device == "cuda" else 4096)
        for model, limit in ((self.embedder, self.embedder.max_length), (self.reranker, self.reranker.max_length)):
            if self.max_batch_tokens < limit:
                raise ModelError(f"MAX_BATCH_TOKENS={self.max_batch_tokens} is below {model.name}'s max length {limit}")
        self.embed_name = args.embed_model_name or self.embedder.name
        self.rerank_name = args.rerank_model_name or self.reranker.name
        self.rerank_origin = provenance(self.reranker.path)  # /info; `make models` may have left a fallback
        if self.rerank_origin["fallback"]:
            log.warning(
                "SERVING THE TEST RERANKER: RERANK_MODEL holds the offline fallback of `make models`, a weak "
                "cross-encoder for tests; run `make models` where the Hugging Face hub is reachable",
                extra={"fields": {"path": str(self.reranker.path), "reason": self.rerank_origin["fallback_reason"]}},
            )
        batching = {
            "max_batch_tokens": self.max_batch_tokens,
            "max_batch_size": args.max_batch_size,
            "padding_split_tokens": args.padding_split_tokens,
            "sort_window_tokens": args.sort_window_tokens,
        }
        self.embed_batcher: Batcher = Batcher("embed", self.embedder.forward_rows, is_oom=is_oom, **batching)
        self.rerank_batcher: Batcher = Batcher("rerank", self.reranker.forward, is_oom=self.reranker.is_oom, **batching)
        # TEI's /embed_all: the same graph's other output, batched on its own (its rows are L x D, not D).
        self.tokens_batcher: Batcher = Batcher("embed_all", self.embedder.forward_tokens, is_oom=is_oom, **batching)
        self.started_at = int(time.time())
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

    @property
    def batchers(self) -> tuple[Batcher, ...]:
        return (self.embed_batcher, self.rerank_batcher, self.tokens_batcher)

    def start(self) -> None:
        for batcher in self.batchers:
            batcher.start()

    async def stop(self) -> None:
        await asyncio.gather(*(batcher.stop() for batcher in self.batchers))

    def acquire(self) -> None:
        """Bound the work in the building: past MAX_CONCURRENT_REQUESTS we refuse instead of queueing forever."""
        limit = self.args.max_concurrent_requests
        if self.in_flight >= limit:
            drain = self.drain_seconds()
            raise Overloaded(
                f"{self.in_flight} requests in flight (MAX_CONCURRENT_REQUESTS={limit}); "
                f"the queue should drain in about {drain:.1f}s, retry then",
                retry_after_s=drain,
            )
        self.in_flight += 1
        metrics.IN_FLIGHT.inc()

    def drain_seconds(self) -> float:
        """Every queue at its recent rate; summed, because the models share the device."""
        return sum(batcher.drain_seconds() for batcher in self.batchers)

    def release(self) -> None:
        self.in_flight -= 1
        metrics.IN_FLIGHT.dec()

    def _check_batch(self, count: int, what: str) -> None:
        if count == 0:
            raise InvalidInput(f"`{what}` must not be empty")
        limit = self.args.max_client_batch_size
        if count > limit:
            raise BatchTooLarge(
                f"`{what}` has {count} items, more than MAX_CLIENT_BATCH_SIZE={limit}; send smaller batches"
            )

    async def embed(
        self,
        inputs: list[str] | list[list[int]],
        *,
        normalize: bool = True,
        truncate: bool = True,
        direction: Direction = "right",
        dimensions: int | None = None,
        timing: Timing | None = None,
    ) -> np.ndarray:
        """float32 rows in input order; `dimensions` keeps the leading ones (Matryoshka), cut before normalising.

        `inputs` are texts, or token-id lists (used as given: the client owns the special tokens).
        """
        if dimensions is not None and dimensions > self.embedder.dimension:
            raise InvalidInput(f"dimensions={dimensions} exceeds the model's {self.embedder.dimension}")
        timing = timing or Timing()
        ids = await self._token_rows(inputs, truncate, direction, timing)
        lengths = [len(r) for r in ids]
        timing.tokens = sum(lengths)
        rows = await self._submit(self.embed_batcher, ids, lengths, timing.batch)
        matrix = np.vstack(rows)
        if dimensions is not None and dimensions < matrix.shape[1]:
            matrix = np.ascontiguousarray(matrix[:, :dimensions])  # orjson writes only contiguous arrays
        return normalize_rows(matrix) if normalize else matrix

    async def embed_all(
        self,
        inputs: list[str] | list[list[int]],
        *,
        normalize: bool = False,
        truncate: bool = True,
        direction: Direction = "right",
        timing: Timing | None = None,
    ) -> list[np.ndarray]:
        """TEI's /embed_all: every token's vector (special tokens included), one (tokens, dimension) per input."""
        if not self.embedder.has_token_embeddings:
            self.embedder.forward_tokens([])  # raises Unsupported with the reason, before any work is queued
        timing = timing or Timing()
        ids = await self._token_rows(inputs, truncate, direction, timing)
        lengths = [len(r) for r in ids]
        timing.tokens = sum(lengths)
        if timing.tokens * self.embedder.dimension > EMBED_ALL_MAX_FLOATS:
            raise BatchTooLarge(
                f"/embed_all would answer {timing.tokens} tokens x {self.embedder.dimension} floats, more than "
                f"{EMBED_ALL_MAX_FLOATS:,} in one response; send fewer or shorter inputs"
            )
        rows = await self._submit(self.tokens_batcher, ids, lengths, timing.batch)
        return [normalize_rows(r) for r in rows] if normalize else rows

    async def _token_rows(
        self, inputs: list[str] | list[list[int]], truncate: bool, direction: Direction, timing: Timing
    ) -> list[np.ndarray]:
        self._check_batch(len(inputs), "inputs")
        if isinstance(inputs[0], list):
            return self.embedder.from_ids(inputs, truncate, direction)  # type: ignore[arg-type]
        return await self._tokenize("embed", timing, self.embedder.tokenize, inputs, truncate, direction)

    async def tokenize(self, texts: list[str], add_special_tokens: bool = True) -> list[list[dict[str, Any]]]:
        self._check_batch(len(texts), "inputs")
        return await asyncio.to_thread(self.embedder.tokens, texts, add_special_tokens)

    async def decode(self, rows: list[list[int]], skip_special_tokens: bool = True) -> list[str]:
        self._check_batch(len(rows), "ids")
        return await asyncio.to_thread(self.embedder.decode, rows, skip_special_tokens)

    async def rerank(
        self,
        query: str,
        texts: list[str],
        *,
        raw_scores: bool = False,
        top_n: int | None = None,
        truncate: bool = True,
        max_doc_tokens: int | None = None,
        timing: Timing | None = None,
    ) -> list[Ranked]:
        """Best first; scores are sigmoid(logit) in 0..1 unless `raw_scores` (the logits FlagReranker returns).

        `max_doc_tokens` cuts each text alone to that many tokens before pairing (Cohere's `max_tokens_per_doc`).
        """
        if max_doc_tokens is not None and max_doc_tokens < 1:
            raise InvalidInput(f"max_doc_tokens={max_doc_tokens} must be at least 1")
        timing = timing or Timing()
        self._check_batch(len(texts), "texts")
        pairs = await self._tokenize("rerank", timing, self.reranker.tokenize, query, texts, truncate, max_doc_tokens)
        lengths = [len(p.input_ids) for p in pairs]
        timing.tokens = sum(lengths)
        logits = np.asarray(await self._submit(self.rerank_batcher, pairs, lengths, timing.batch), dtype=np.float64)
        return rank(logits if raw_scores else sigmoid(logits), top_n)

    @staticmethod
    async def _tokenize(model: str, timing: Timing, tokenize: Callable[..., list[T]], *args: Any) -> list[T]:
        """Tokenise; an input over the model's length (truncate=false) raises InputTooLong.

        A few short texts (a search box's query) are tokenised right here: tens of microseconds, less than the
        hand-off to a worker thread and back. Anything longer goes to a thread so the event loop stays free.
        """
        t0 = time.perf_counter()
        if _chars(args) <= INLINE_TOKENIZE_CHARS:
            items = tokenize(*args)
        else:
            items = await asyncio.to_thread(tokenize, *args)
        timing.tokenization_s = time.perf_counter() - t0
        metrics.TOKENIZATION.labels(model).observe(timing.tokenization_s)
        if tracing.ENABLED:
            traces.tokenized(model, t0, len(items))
        return items

    @staticmethod
    async def _submit(batcher: Batcher, payloads: list, lengths: list[int], timing: BatchTiming) -> list:
        try:
            rows = await batcher.submit(payloads, lengths, timing)
            if tracing.ENABLED:
                traces.batched(batcher.name, timing, lengths)
            return rows
        except (asyncio.CancelledError, DomainError):
            raise
        except Exception as exc:
            raise InferenceFailed(f"{batcher.name} inference failed: {exc}", out_of_memory=is_oom(exc)) from exc

    def info(self) -> dict[str, Any]:
        a = self.args
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
                **self.rerank_origin,
                "backend": self.reranker.backend,
                "max_length": self.reranker.max_length,
                "device": self.reranker.device,
                "fp16": self.reranker.fp16,
            },
            "device": self.plan.device,
            "device_reason": self.plan.reason,
            "batching": {
                "max_batch_tokens": self.max_batch_tokens,
                "max_batch_size": a.max_batch_size,
                "padding_split_tokens": a.padding_split_tokens,
                "sort_window_tokens": a.sort_window_tokens,
                "max_concurrent_requests": a.max_concurrent_requests,
                "max_client_batch_size": a.max_client_batch_size,
            },
            "queue": {
                "embed": self.embed_batcher.queue_size,
                "rerank": self.rerank_batcher.queue_size,
                "embed_all": self.tokens_batcher.queue_size,
                "in_flight": self.in_flight,
                "drain_seconds": round(self.drain_seconds(), 2),
            },
            "load_seconds": round(self.load_seconds, 2),
        }
