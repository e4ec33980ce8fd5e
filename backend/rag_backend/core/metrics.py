"""Prometheus metrics, named rag_* so dashboards tell backend and ml-api series apart."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUEST_LATENCY = Histogram(
    "rag_request_duration_seconds", "HTTP request latency by route", ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
UPSTREAM_LATENCY = Histogram(
    "rag_upstream_duration_seconds", "Latency of calls to ml-api / the embeddings API", ["target", "outcome"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
STORE_LATENCY = Histogram("rag_store_duration_seconds", "Vector store call latency", ["op"], buckets=LATENCY_BUCKETS)
CACHE_REQUESTS = Counter("rag_cache_requests_total", "Cache lookups", ["kind", "result"])  # result: hit|miss|error
INGEST_JOBS = Gauge(  # catalog-wide: every API replica reports the same counts, so aggregate with max, not sum
    "rag_ingest_jobs", "Ingestion jobs by stage (current, the whole catalog)", ["stage"]
)
INGEST_FINISHED = Counter("rag_ingest_jobs_finished_total", "Ingestion jobs finished", ["status"])
INGEST_CHUNKS = Counter("rag_ingest_chunks_total", "Chunks indexed")
INGEST_RESUMED = Counter(
    "rag_ingest_chunks_resumed_total", "Chunks a job taken over from a stopped process did not embed again"
)
INGEST_CLAIMS = Counter(
    "rag_ingest_claims_total", "Rows this process leased", ["kind"]
)  # job|resume|cleanup|collection
INGEST_DEPENDENCY_DOWN = Gauge(
    "rag_ingest_dependency_down", "1 while ingestion waits out an outage of this dependency", ["dependency"]
)
INGEST_TRANSIENT_FAILURES = Counter(
    "rag_ingest_transient_failures_total", "Ingestion calls that failed transiently and will be retried", ["dependency"]
)
