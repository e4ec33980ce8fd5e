"""The served models, their batchers and the admission limit: what the routes call, nothing HTTP in here.

Each served model (one or more of each kind: EMBED_MODELS, RERANK_MODELS) has its own batcher, admission
share and metrics label; a request's `model` picks one (`embedding`, `reranking`), the first is the default.

The numeric answer is finished here too (normalisation, the `dimensions` cut, sigmoid, ranking), so every
API family gets the same numbers and a route only reshapes them. Failures are `ml_api.errors` classes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ml_api import traces
from ml_api.args import EngineArgs
from ml_api.batching import Batcher, BatchTiming
from ml_api.core import metrics, tracing
from ml_api.device import DevicePlan, detect, free_memory_mb
from ml_api.embedding import Direction, normalize_rows
from ml_api.errors import (
    BatchTooLarge,
    DomainError,
    InferenceFailed,
    InvalidInput,
    ModelError,
    NotFound,
    Overloaded,
)
from ml_api.loading import EmbeddingModel, RerankModel, check_fits, load_embedder, load_reranker, resolve, weight_bytes
from ml_api.registry import provenance
from ml_api.reranking import sigmoid
from ml_api.session import Threads, is_oom

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


@dataclass(eq=False, slots=True)
class EmbedSlot:
    """One served embedder: its name (what responses report), its two batchers, its admission share."""

    name: str
    model: EmbeddingModel
    batcher: Batcher
    tokens_batcher: Batcher  # TEI's /embed_all: the same graph's per-token output, batched on its own
    share: int
    in_flight: int = 0


@dataclass(eq=False, slots=True)
class RerankSlot:
    name: str
    model: RerankModel
    batcher: Batcher
    share: int
    origin: dict[str, Any]  # provenance: `make models` may have left a fallback in the slot
    in_flight: int = 0


Slot = EmbedSlot | RerankSlot


def _label(kind: str, name: str, first: bool) -> str:
    """The metrics label: the kind for the default model (as before several were served), kind:name after it."""
    return kind if first else f"{kind}:{name}"


class Engine:
    """Built once in the app's lifespan; `start` needs the running event loop (the batchers' tasks)."""

    def __init__(self, args: EngineArgs) -> None:
        self.args = args
        self.plan: DevicePlan = detect(args.device, args.rerank_fp16)
        started = time.perf_counter()
        embed_paths = {spec: resolve("embedding", spec, args.models_dir) for _, spec in args.embed_models}
        rerank_paths = {spec: resolve("reranker", spec, args.models_dir) for _, spec in args.rerank_models}
        self._check_memory(
            {f"embedder {name or spec}": embed_paths[spec] for name, spec in args.embed_models}
            | {f"reranker {name or spec}": rerank_paths[spec] for name, spec in args.rerank_models}
        )
        self.max_batch_tokens = args.max_batch_tokens or (16384 if self.plan.device == "cuda" else 4096)
        batching = {
            "max_batch_tokens": self.max_batch_tokens,
            "max_batch_size": args.max_batch_size,
            "padding_split_tokens": args.padding_split_tokens,
            "sort_window_tokens": args.sort_window_tokens,
        }
        threads = Threads(args.ort_intra_op_threads, args.ort_allow_spinning)
        limit = args.max_concurrent_requests
        self.embedders: dict[str, EmbedSlot] = {}
        for n, (name, spec) in enumerate(args.embed_models):
            model = load_embedder(embed_paths[spec], self.plan, threads)
            name = self._unique(name or model.name, self.embedders)
            self._check_length(model)
            label = _label("embed", name, n == 0)
            self.embedders[name] = EmbedSlot(
                name,
                model,
                Batcher(label, model.forward_rows, is_oom=is_oom, **batching),
                Batcher(_label("embed_all", name, n == 0), model.forward_tokens, is_oom=is_oom, **batching),
                share=math.ceil(limit / len(args.embed_models)),
            )
        self.rerankers: dict[str, RerankSlot] = {}
        for n, (name, spec) in enumerate(args.rerank_models):
            reranker = load_reranker(rerank_paths[spec], self.plan, args.rerank_max_length, threads)
            name = self._unique(name or reranker.name, self.rerankers)
            self._check_length(reranker)
            slot = RerankSlot(
                name,
                reranker,
                Batcher(_label("rerank", name, n == 0), reranker.forward, is_oom=reranker.is_oom, **batching),
                share=math.ceil(limit / len(args.rerank_models)),
                origin=provenance(reranker.path),
            )
            self.rerankers[name] = slot
            if slot.origin["fallback"]:
                log.warning(
                    "SERVING THE TEST RERANKER: RERANK_MODEL holds the offline fallback of `make models`, a weak "
                    "cross-encoder for tests; run `make models` where the Hugging Face hub is reachable",
                    extra={"fields": {"path": str(reranker.path), "reason": slot.origin["fallback_reason"]}},
                )
        self.default_embedder = next(iter(self.embedders.values()))
        self.default_reranker = next(iter(self.rerankers.values()))
        workers = args.tokenization_workers or os.cpu_count() or 1
        self.tokenization_workers = workers
        self._tokenizers = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tokenize")
        self.started_at = int(time.time())
        self.in_flight = 0
        self.load_seconds = time.perf_counter() - started
        log.info(
            "models loaded",
            extra={
                "fields": {
                    "embed": {name: str(s.model.path) for name, s in self.embedders.items()},
                    "rerank": {name: str(s.model.path) for name, s in self.rerankers.items()},
                    "device": self.plan.device,
                    "reason": self.plan.reason,
                    "seconds": round(self.load_seconds, 2),
                }
            },
        )

    def _check_memory(self, paths: dict[str, Path]) -> None:
        """Fail before loading anything when the weights alone would not fit the budget."""
        if self.args.models_max_memory_mb is not None:
            budget: tuple[float, str] | None = (self.args.models_max_memory_mb, "MODELS_MAX_MEMORY_MB")
        else:
            budget = free_memory_mb(self.plan.device)
        if budget is not None:
            check_fits({label: weight_bytes(path) for label, path in paths.items()}, *budget)

    def _check_length(self, model: EmbeddingModel | RerankModel) -> None:
        if self.max_batch_tokens < model.max_length:
            raise ModelError(
                f"MAX_BATCH_TOKENS={self.max_batch_tokens} is below {model.name}'s max length {model.max_length}"
            )

    @staticmethod
    def _unique(name: str, taken: dict[str, Any]) -> str:
        if name in taken:
            raise ModelError(f"two served models are both named {name!r}; name them in EMBED_MODELS / RERANK_MODELS")
        return name

    def embedding(self, model: str | None = None) -> EmbedSlot:
        """The embedder a request names; with one served, any name (or none) is it, as a one-model server does."""
        return self._pick(self.embedders, model, "embedding")

    def reranking(self, model: str | None = None) -> RerankSlot:
        return self._pick(self.rerankers, model, "rerank")

    @staticmethod
    def _pick(slots: dict[str, T], model: str | None, kind: str) -> T:
        if model is None or len(slots) == 1:
            return next(iter(slots.values()))
        if model in slots:
            return slots[model]
        raise NotFound(f"{kind} model {model!r} is not served here; served: {', '.join(slots)}")

    @property
    def batchers(self) -> tuple[Batcher, ...]:
        embed = [b for s in self.embedders.values() for b in (s.batcher, s.tokens_batcher)]
        return (*embed, *(s.batcher for s in self.rerankers.values()))

    def start(self) -> None:
        for batcher in self.batchers:
            batcher.start()

    async def stop(self) -> None:
        await asyncio.gather(*(batcher.stop() for batcher in self.batchers))
        self._tokenizers.shutdown(wait=False, cancel_futures=True)

    def acquire(self, slot: Slot | None = None) -> None:
        """Bound the work in the building: past MAX_CONCURRENT_REQUESTS we refuse instead of queueing forever.

        With several models of a kind, each may hold at most its share of the slots (the limit over their
        number), so a flood on one model leaves room for the others.
        """
        limit = self.args.max_concurrent_requests
        held, cap, whose = self.in_flight, limit, f"MAX_CONCURRENT_REQUESTS={limit}"
        if slot is not None and self.in_flight < limit and slot.in_flight >= slot.share:
            held, cap, whose = slot.in_flight, slot.share, f"{slot.name}'s share of MAX_CONCURRENT_REQUESTS={limit}"
        if held >= cap:
            drain = self.drain_seconds()
            raise Overloaded(
                f"{held} requests in flight ({whose}); the queue should drain in about {drain:.1f}s, retry then",
                retry_after_s=drain,
            )
        self.in_flight += 1
        if slot is not None:
            slot.in_flight += 1
        metrics.IN_FLIGHT.inc()

    def drain_seconds(self) -> float:
        """Every queue at its recent rate; summed, because the models share the device."""
        return sum(batcher.drain_seconds() for batcher in self.batchers)

    def release(self, slot: Slot | None = None) -> None:
        self.in_flight -= 1
        if slot is not None:
            slot.in_flight -= 1
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
        model: str | None = None,
        normalize: bool = True,
        truncate: bool = True,
        direction: Direction = "right",
        dimensions: int | None = None,
        timing: Timing | None = None,
    ) -> np.ndarray:
        """float32 rows in input order; `dimensions` keeps the leading ones (Matryoshka), cut before normalising.

        `inputs` are texts, or token-id lists (used as given: the client owns the special tokens).
        """
        slot = self.embedding(model)
        if dimensions is not None and dimensions > slot.model.dimension:
            raise InvalidInput(f"dimensions={dimensions} exceeds the model's {slot.model.dimension} ({slot.name})")
        timing = timing or Timing()
        ids = await self._token_rows(slot, inputs, truncate, direction, timing)
        lengths = [len(r) for r in ids]
        timing.tokens = sum(lengths)
        rows = await self._submit(slot.batcher, ids, lengths, timing.batch)
        matrix = rows[0][np.newaxis] if len(rows) == 1 else np.vstack(rows)  # one query: no stacking to do
        if dimensions is not None and dimensions < matrix.shape[1]:
            matrix = np.ascontiguousarray(matrix[:, :dimensions])  # orjson writes only contiguous arrays
        return normalize_rows(matrix) if normalize else matrix

    async def embed_all(
        self,
        inputs: list[str] | list[list[int]],
        *,
        model: str | None = None,
        normalize: bool = False,
        truncate: bool = True,
        direction: Direction = "right",
        timing: Timing | None = None,
    ) -> list[np.ndarray]:
        """TEI's /embed_all: every token's vector (special tokens included), one (tokens, dimension) per input."""
        slot = self.embedding(model)
        if not slot.model.has_token_embeddings:
            slot.model.forward_tokens([])  # raises Unsupported with the reason, before any work is queued
        timing = timing or Timing()
        ids = await self._token_rows(slot, inputs, truncate, direction, timing)
        lengths = [len(r) for r in ids]
        timing.tokens = sum(lengths)
        dimension = slot.model.dimension
        if timing.tokens * dimension > EMBED_ALL_MAX_FLOATS:
            raise BatchTooLarge(
                f"/embed_all would answer {timing.tokens} tokens x {dimension} floats, more than "
                f"{EMBED_ALL_MAX_FLOATS:,} in one response; send fewer or shorter inputs"
            )
        rows = await self._submit(slot.tokens_batcher, ids, lengths, timing.batch)
        return [normalize_rows(r) for r in rows] if normalize else rows

    async def _token_rows(
        self, slot: EmbedSlot, inputs: list[str] | list[list[int]], truncate: bool, direction: Direction, timing: Timing
    ) -> list[np.ndarray]:
        self._check_batch(len(inputs), "inputs")
        if isinstance(inputs[0], list):
            return slot.model.from_ids(inputs, truncate, direction)  # type: ignore[arg-type]
        return await self._tokenize(slot.batcher.name, timing, slot.model.tokenize, inputs, truncate, direction)

    async def tokenize(
        self, texts: list[str], add_special_tokens: bool = True, model: str | None = None
    ) -> list[list[dict[str, Any]]]:
        self._check_batch(len(texts), "inputs")
        return await self._off_loop(self.embedding(model).model.tokens, texts, add_special_tokens)

    async def decode(
        self, rows: list[list[int]], skip_special_tokens: bool = True, model: str | None = None
    ) -> list[str]:
        self._check_batch(len(rows), "ids")
        return await self._off_loop(self.embedding(model).model.decode, rows, skip_special_tokens)

    async def rerank(
        self,
        query: str,
        texts: list[str],
        *,
        model: str | None = None,
        raw_scores: bool = False,
        top_n: int | None = None,
        truncate: bool = True,
        max_doc_tokens: int | None = None,
        timing: Timing | None = None,
    ) -> list[Ranked]:
        """Best first; scores are sigmoid(logit) in 0..1 unless `raw_scores` (the logits FlagReranker returns).

        `max_doc_tokens` cuts each text alone to that many tokens before pairing (Cohere's `max_tokens_per_doc`).
        """
        slot = self.reranking(model)
        if max_doc_tokens is not None and max_doc_tokens < 1:
            raise InvalidInput(f"max_doc_tokens={max_doc_tokens} must be at least 1")
        timing = timing or Timing()
        self._check_batch(len(texts), "texts")
        pairs = await self._tokenize(
            slot.batcher.name, timing, slot.model.tokenize, query, texts, truncate, max_doc_tokens
        )
        lengths = [len(p.input_ids) for p in pairs]
        timing.tokens = sum(lengths)
        logits = np.asarray(await self._submit(slot.batcher, pairs, lengths, timing.batch), dtype=np.float64)
        return rank(logits if raw_scores else sigmoid(logits), top_n)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Blocking tokenizer work on the engine's own bounded pool (TOKENIZATION_WORKERS), not the loop's."""
        return await asyncio.get_running_loop().run_in_executor(self._tokenizers, fn, *args)

    async def _tokenize(self, label: str, timing: Timing, tokenize: Callable[..., list[T]], *args: Any) -> list[T]:
        """Tokenise; an input over the model's length (truncate=false) raises InputTooLong.

        A few short texts (a search box's query) are tokenised right here: tens of microseconds, less than the
        hand-off to a worker thread and back. Anything longer goes to the tokenizer pool so the loop stays free.
        """
        t0 = time.perf_counter()
        if _chars(args) <= INLINE_TOKENIZE_CHARS:
            items = tokenize(*args)
        else:
            items = await self._off_loop(tokenize, *args)
        timing.tokenization_s = time.perf_counter() - t0
        # Written once the batch is on the device (the loop is idle then), not on the way to it.
        asyncio.get_running_loop().call_soon(metrics.series(metrics.TOKENIZATION, label).observe, timing.tokenization_s)
        if tracing.ENABLED:
            traces.tokenized(label, t0, len(items))
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

    def models(self) -> list[dict[str, Any]]:
        """Every served model as /v1/models and /info list it: kind, width, length, dtype, device, provider."""
        out = []
        for kind, slots in (("embedding", self.embedders), ("reranker", self.rerankers)):
            for n, (name, slot) in enumerate(slots.items()):
                described = slot.model.describe()
                out.append(
                    {
                        "id": name,
                        "kind": kind,
                        "default": n == 0,
                        **described,
                        **(slot.origin if isinstance(slot, RerankSlot) else {}),
                        "admission_share": slot.share,
                        "queue": slot.batcher.queue_size,
                    }
                )
        return out

    def info(self) -> dict[str, Any]:
        a = self.args
        models = self.models()
        embed, rerank = self.default_embedder, self.default_reranker  # listed first of their kind
        return {
            "models": models,
            # The defaults under their former keys, so readers of the one-model /info keep working.
            "embedding": {"model": embed.name, **next(m for m in models if m["kind"] == "embedding")},
            "reranking": {"model": rerank.name, **next(m for m in models if m["kind"] == "reranker")},
            "device": self.plan.device,
            "device_reason": self.plan.reason,
            "tokenization_workers": self.tokenization_workers,
            "batching": {
                "max_batch_tokens": self.max_batch_tokens,
                "max_batch_size": a.max_batch_size,
                "padding_split_tokens": a.padding_split_tokens,
                "sort_window_tokens": a.sort_window_tokens,
                "max_concurrent_requests": a.max_concurrent_requests,
                "max_client_batch_size": a.max_client_batch_size,
            },
            "queue": {
                **{b.name: b.queue_size for b in self.batchers},
                "in_flight": self.in_flight,
                "drain_seconds": round(self.drain_seconds(), 2),
            },
            "load_seconds": round(self.load_seconds, 2),
        }
