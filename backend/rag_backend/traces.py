"""The backend's spans beyond the request's own: query stages, the LLM answer, ingestion jobs.

Every helper is free when tracing is off (`core.tracing.ENABLED` false): `job` hands the coroutine back as it
was, `stage` and `llm` return at once. Stage spans are built after the fact from perf_counter marks, so the code
they describe keeps its shape; only calls that leave the process (ml-api, the LLM) run inside their span, so the
outgoing `traceparent` names it.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Sequence
from typing import Any

from rag_backend.core import tracing


def stage(name: str, started: float, **attributes: Any) -> None:
    """A finished stage of the current request or job, from `started` (perf_counter) to now."""
    if tracing.ENABLED:
        tracing.record(name, started, time.perf_counter(), attributes)


def job(step: Coroutine[Any, Any, None], doc: dict[str, Any]) -> Coroutine[Any, Any, None]:
    """Runs a claimed job in a trace of its own, linked to the upload request that queued it."""
    if not tracing.ENABLED:
        return step
    return _job(step, doc)


async def _job(step: Coroutine[Any, Any, None], doc: dict[str, Any]) -> None:
    attributes = {"document.id": doc["id"], "document.format": doc["format"], "document.status": doc["status"]}
    with tracing.root_span("ingestion job", attributes, link=doc.get("trace_parent")):
        await step


def llm(
    started: float, provider: Any, model: str | None, cached: bool, prompt: Sequence[Any], answer: str, counter: Any
) -> None:
    """The answer's generation; token counts by the backend's own tokenizer (streams report no usage)."""
    if not tracing.ENABLED:
        return
    input_tokens = sum(counter.count(m.get("content", "")) for m in prompt)
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model or "",
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": counter.count(answer),
        "llm.cached": cached,
    }
    tracing.record("llm", started, time.perf_counter(), attributes)
