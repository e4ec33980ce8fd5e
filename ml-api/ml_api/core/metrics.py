"""Prometheus series; names follow TEI's where one exists so existing dashboards carry over."""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter("mlapi_requests", "HTTP requests by route and status", ["route", "status"], registry=REGISTRY)
REQUEST_DURATION = Histogram(
    "mlapi_request_duration_seconds", "End-to-end request time", ["route"], buckets=_LATENCY, registry=REGISTRY
)
IN_FLIGHT = Gauge("mlapi_in_flight_requests", "Admitted requests not yet answered", registry=REGISTRY)
QUEUE_SIZE = Gauge("mlapi_queue_size", "Items waiting for a batch", ["model"], registry=REGISTRY)
BATCH_SIZE = Histogram(
    "mlapi_batch_size",
    "Items per inference batch",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
BATCH_TOKENS = Histogram(
    "mlapi_batch_tokens",
    "Padded tokens per inference batch",
    ["model"],
    buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536),
    registry=REGISTRY,
)
TOKENIZATION = Histogram(
    "mlapi_tokenization_duration_seconds",
    "Tokenisation time per request",
    ["model"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
QUEUE_TIME = Histogram(
    "mlapi_queue_duration_seconds",
    "Time an item waited before its batch ran",
    ["model"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
INFERENCE = Histogram(
    "mlapi_inference_duration_seconds", "Forward pass time per batch", ["model"], buckets=_LATENCY, registry=REGISTRY
)
OOM_SPLITS = Counter(
    "mlapi_oom_splits", "Batches split in two after an out-of-memory error", ["model"], registry=REGISTRY
)
CANCELLED = Counter(
    "mlapi_cancelled_items", "Items dropped before inference because the client left", ["model"], registry=REGISTRY
)


@functools.cache
def series(metric: MetricWrapperBase, *labels: str) -> Any:
    """`metric.labels(*labels)`, looked up once per label set: labels() takes a lock and builds its key on every call,
    a cost on every request's path (docs/benchmarks.md#single-short-text-latency)."""
    return metric.labels(*labels)
