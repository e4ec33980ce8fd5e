"""ml-api's spans beyond the request's own (tokenize, queue wait, inference), as TEI exports them.

Called from the engine only when tracing is on (`core.tracing.ENABLED`); built after the fact from the
perf_counter marks the engine and the batcher already take, so a request pays no extra clock reads.
"""

from __future__ import annotations

import time

from ml_api.batching import BatchTiming
from ml_api.core import tracing


def tokenized(model: str, started: float, items: int) -> None:
    tracing.record("tokenize", started, time.perf_counter(), {"ml.model": model, "ml.inputs": items})


def batched(model: str, timing: BatchTiming, lengths: list[int]) -> None:
    """The request's wait in its model's queue, then the batch(es) its items ran in."""
    tracing.record("queue", timing.enqueued, timing.started, {"ml.model": model})
    attributes = {
        "ml.model": model,
        "ml.batch_size": timing.batch_size,
        "ml.request_items": len(lengths),
        "ml.request_tokens": sum(lengths),
    }
    tracing.record("inference", timing.started, timing.finished, attributes)
