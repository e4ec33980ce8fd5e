"""ONNX Runtime plumbing both ONNX model kinds share: the session, padding, and reading an OOM from its message."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from ml_api.device import DevicePlan
from ml_api.errors import DeviceUnavailable, ModelError


def is_oom(exc: BaseException) -> bool:
    """ONNX Runtime reports allocation failures only in the message text."""
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate memory" in text or "cudaerrormemoryallocation" in text


class Threads(NamedTuple):
    """How a session's intra-op pool behaves (ORT_INTRA_OP_THREADS, ORT_ALLOW_SPINNING)."""

    intra_op: int = 0  # 0: ONNX Runtime's default (one per physical core)
    # Pool threads busy-wait a short while for the next parallel section instead of sleeping on a futex. Off by
    # default: on 2 shared cores under load it made a short text's forward 4x slower in the service (8.5-13.6 ms
    # without, 44.7-46.6 ms with; docs/benchmarks.md#single-short-text-latency); on dedicated cores it saves
    # the wake-ups, dozens per forward of one short text.
    spinning: bool = False


DEFAULT_THREADS = Threads()


def open_session(
    file: Path, plan: DevicePlan, threads: Threads | None = None, model: bytes | None = None
) -> ort.InferenceSession:
    """An ONNX Runtime session on the planned providers (both ONNX models, embedder and reranker, use it).

    `model` is the graph's bytes when the caller changed it in memory (fp16 on CUDA); `file` then names it.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    threads = threads or DEFAULT_THREADS
    if threads.intra_op:
        options.intra_op_num_threads = threads.intra_op
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if threads.spinning else "0")
    providers: list = []
    for name in plan.ort_providers:
        if name == "CUDAExecutionProvider":
            providers.append(
                (
                    name,
                    {
                        "device_id": 0,
                        "arena_extend_strategy": "kSameAsRequested",
                        "cudnn_conv_algo_search": "HEURISTIC",
                    },
                )
            )
        else:
            providers.append(name)
    try:
        session = ort.InferenceSession(str(file) if model is None else model, options, providers=providers)
    except Exception as exc:
        raise ModelError(f"onnxruntime cannot load {file}: {exc}") from exc
    if plan.device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise DeviceUnavailable(f"CUDA was planned but onnxruntime fell back to {session.get_providers()}")
    return session


def pad_batch(rows: list[np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token rows to the longest; returns (ids, attention mask), both int64."""
    longest = max(len(r) for r in rows)
    ids = np.full((len(rows), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), longest), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask
