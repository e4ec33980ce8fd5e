"""Tracing across the stack: the backend, ml-api and an OpenAI-compatible LLM, all real processes and HTTP,
exporting OTLP/HTTP to a real receiver that decodes the protobuf (devharness.otlp). One query is one trace: the
caller's traceparent is honoured, the backend's calls to ml-api and the LLM carry it, and every span hangs off the
right parent. An ingestion job is a trace of its own, linked to the upload request that queued it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from conftest import Proc, start_backend, start_ml_api, wait_ready
from devharness import free_port
from devharness.otlp import OtlpReceiver, Span
from fake_llm import FakeLLM

DOC = b"# Tides\n\nThe moon's gravity pulls the oceans, raising two tidal bulges that the Earth turns through.\n"


def otel_env(receiver: OtlpReceiver, service: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 100 ms instead of 5 s
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OtlpReceiver, Proc, Proc, FakeLLM]]:
    tmp = tmp_path_factory.mktemp("tracing")
    with OtlpReceiver() as receiver, FakeLLM() as llm:
        ml = start_ml_api(tmp / "ml-api.log", free_port(), **otel_env(receiver, "ml-api"))
        backend = start_backend(
            tmp, ml.url, LLM_PROVIDERS="openai", OPENAI_BASE_URL=f"{llm.url}/v1", OPENAI_MODEL="gpt-test",
            **otel_env(receiver, "backend"),
        )  # fmt: skip
        try:
            yield receiver, ml, backend, llm
        finally:
            backend.stop()
            ml.stop()


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def by_id(spans: list[Span]) -> dict[str, Span]:
    return {s.span_id: s for s in spans}


def ancestors(span: Span, index: dict[str, Span]) -> list[Span]:
    chain = []
    while span.parent_id in index:
        span = index[span.parent_id]
        chain.append(span)
    return chain


def one(spans: list[Span], service: str, name: str) -> Span:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, f"{service}:{name} x{len(found)} in {sorted(f'{s.service}:{s.name}' for s in spans)}"
    return found[0]


def test_one_query_is_one_trace_across_backend_ml_api_and_the_llm(stack) -> None:
    receiver, _, backend, llm = stack
    with backend.client() as c:
        up = c.post("/api/documents", data={"collection": "traced"}, files=[("files", ("tides.md", DOC))])
        assert up.status_code == 202
        assert wait_ready(c, up.json()["documents"][0]["id"])["status"] == "ready"
        header, trace_id, caller_span = traceparent()
        body = {"query": "what raises the tides?", "collection": "traced", "top_k": 2, "generate": True}
        res = c.post("/api/query", json=body, headers={"traceparent": header})
    assert res.status_code == 200, res.text
    assert res.json()["llm"]["provider"] == "openai"
    assert res.headers["traceparent"].split("-")[1] == trace_id  # the caller can find its trace

    def complete(spans: list[Span]) -> bool:
        """Everything read below: each service exports in batches of its own, so one span is no sign of the rest."""
        mine = [s for s in spans if s.trace_id == trace_id]
        backend_server = any(s.service == "backend" and s.kind == "server" for s in mine)
        ml_posts = sum(1 for s in mine if s.service == "ml-api" and s.kind == "server" and s.name.startswith("POST"))
        inferences = sum(1 for s in mine if s.service == "ml-api" and s.name == "inference")
        llm_done = any(s.service == "backend" and s.name == "llm" for s in mine)
        return backend_server and llm_done and ml_posts >= 2 and inferences >= 2

    receiver.wait(complete)
    spans = receiver.trace(trace_id)
    index = by_id(spans)
    server = next(s for s in spans if s.service == "backend" and s.kind == "server")
    assert server.parent_id == caller_span  # the incoming traceparent was honoured, not replaced
    assert "/api/query" in server.name
    for stage in ("query embedding", "bm25 query", "search", "fusion", "rerank", "llm"):
        assert server in ancestors(one(spans, "backend", stage), index), stage
    assert one(spans, "backend", "search").attributes["using"] == ["dense", "bm25"]
    llm_span = one(spans, "backend", "llm")
    assert llm_span.attributes["gen_ai.usage.output_tokens"] > 0
    assert llm_span.attributes["gen_ai.usage.input_tokens"] > 0

    # ml-api: each of its request spans is the child of a backend client span, under the query's stages.
    ml_servers = [s for s in spans if s.service == "ml-api" and s.kind == "server" and s.name.startswith("POST")]
    assert len(ml_servers) == 2  # the query's embedding and its rerank (a GET /info for limits may come too)
    parents = {index[s.parent_id].name for s in ml_servers}
    assert all(index[s.parent_id].kind == "client" and index[s.parent_id].service == "backend" for s in ml_servers)
    stages = {next(a.name for a in ancestors(s, index) if a.name in ("query embedding", "rerank")) for s in ml_servers}
    assert stages == {"query embedding", "rerank"}, parents
    for ml_server in ml_servers:
        children = {s.name: s for s in spans if s.parent_id == ml_server.span_id}
        assert {"tokenize", "queue", "inference"} <= children.keys(), children.keys()
        inference = children["inference"].attributes
        assert inference["ml.batch_size"] >= 1 and inference["ml.request_tokens"] > 0
        assert ancestors(ml_server, index)[-1] is server

    # The LLM call carried the same trace.
    asked = [r for r in llm.requests if r["protocol"] == "openai"]
    assert asked and asked[-1]["traceparent"].split("-")[1] == trace_id


def test_ingestion_job_is_its_own_trace_linked_to_the_upload(stack) -> None:
    receiver, _, backend, _ = stack
    header, upload_trace, _ = traceparent()
    with backend.client() as c:
        up = c.post("/api/documents", files=[("files", ("moon.md", DOC + b"\nSecond upload.\n"))],
                    headers={"traceparent": header})  # fmt: skip
        assert up.status_code == 202
        doc_id = up.json()["documents"][0]["id"]
        assert wait_ready(c, doc_id)["status"] == "ready"

    def job_of_upload(spans: list[Span]) -> bool:
        jobs = [s for s in spans if s.name == "ingestion job" and s.attributes.get("document.id") == doc_id]
        return bool(jobs) and any(s.trace_id == jobs[0].trace_id and s.name == "publish" for s in spans)

    spans = receiver.wait(job_of_upload)
    job = next(s for s in spans if s.name == "ingestion job" and s.attributes.get("document.id") == doc_id)
    upload = one(receiver.trace(upload_trace), "backend", "POST /api/documents")
    assert job.trace_id != upload_trace and job.parent_id == ""
    assert job.links == ((upload_trace, upload.span_id),)  # linked to the request that queued it
    index = by_id(receiver.trace(job.trace_id))
    stages = {s.name for s in index.values() if job in ancestors(s, index)}
    assert {"parse", "chunk", "embed batch", "index batch", "index", "publish"} <= stages, stages


def test_trace_ids_in_json_logs(stack) -> None:
    receiver, _, backend, _ = stack
    receiver.wait(lambda spans: any(s.name == "publish" for s in spans))
    lines = [orjson.loads(line) for line in backend.output().splitlines() if line.startswith("{")]
    indexed = [e for e in lines if e.get("msg") == "indexed"]
    assert indexed and all(len(e.get("trace_id", "")) == 32 for e in indexed)
    job_traces = {s.trace_id for s in receiver.spans if s.name == "ingestion job"}
    assert {e["trace_id"] for e in indexed} <= job_traces


def test_off_by_default_and_free(tmp_path: Path) -> None:
    """Without OTEL_EXPORTER_OTLP_ENDPOINT none of the tracing SDK, exporter or instrumentation is imported, the
    helpers hand back the shared no-op, and responses carry no traceparent. (redis imports the SDK's *metrics* part
    on its own when the SDK is installed; that is redis's, at import time, not ours.)"""
    import subprocess
    import sys

    code = (
        "import sys; from rag_backend.api.app import create_app; from rag_backend.core import tracing; "
        "from rag_backend import traces; create_app(); traces.stage('x', 0.0); "
        "assert tracing.span('x') is tracing.span('y'); "
        "print(tracing.ENABLED, sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', "
        "'opentelemetry.exporter', 'opentelemetry.instrumentation'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "LOG_JSON": "false"})  # fmt: skip
    assert out.stdout.split("\n")[0] == "False []", out.stdout + out.stderr


def test_no_traceparent_header_when_off(backend: Proc) -> None:
    with backend.client() as c:
        res = c.get("/api/collections", headers={"traceparent": traceparent()[0]})
    assert res.status_code == 200 and "traceparent" not in res.headers
