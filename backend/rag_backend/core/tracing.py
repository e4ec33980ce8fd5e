"""OpenTelemetry tracing, off unless an OTLP endpoint is configured, and free when off.

Both services keep this file word for word (deploy/tests/test_twins.py). It reads the standard variables:
tracing is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set and neither
`OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise; `OTEL_SERVICE_NAME`,
`OTEL_TRACES_SAMPLER(_ARG)`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*` and `OTEL_PROPAGATORS` are read by the
SDK itself. Spans leave over OTLP/HTTP (protobuf) in batches, off the event loop.

When off, no OpenTelemetry module is imported: `span()` hands back one shared no-op context and `ENABLED` is a
module global that hot paths test before building any attribute.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

log = logging.getLogger(__name__)

ENABLED = False
# Probes and scrapes would be most of the traces and none of the questions: not traced unless the operator sets
# OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (comma-separated regular expressions) to something else.
EXCLUDED_URLS = "/health$,/live$,/ready$,/metrics$,/docs,/openapi.json$,/static-offline-docs/"
_PERF_TO_EPOCH_NS = time.time_ns() - time.perf_counter_ns()
_tracer: Any = None


class _NoSpan:
    """What `span()` yields when tracing is off: attribute calls cost one method lookup."""

    __slots__ = ()

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        pass


NO_SPAN = _NoSpan()
_OFF: AbstractContextManager[Any] = nullcontext(NO_SPAN)  # stateless: one instance serves every caller


def configured(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the standard variables ask for OTLP trace export."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() not in ("otlp", ""):
        return False  # "none", or an exporter this build does not ship
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Installs the tracer provider once per process (an OTLP/HTTP exporter behind a batch processor) and the
    log filter that writes trace ids into the JSON logs; returns whether tracing is on."""
    global ENABLED, _tracer
    if ENABLED:
        _install_log_filter()
        return True
    if not configured(environ):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.propagators import set_global_response_propagator
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = "OTEL_SERVICE_NAME" in environ or "service.name=" in environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    set_global_response_propagator(_traceparent_response())
    _tracer = trace.get_tracer(service)
    ENABLED = True
    _install_log_filter()
    log.info("tracing on", extra={"fields": {"service": service, "sampler": environ.get("OTEL_TRACES_SAMPLER")}})
    return True


def instrument_app(app: Any) -> None:
    """Server spans for every request (incoming `traceparent` honoured, `traceparent` sent back); no-op when off."""
    if not ENABLED:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    excluded = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", EXCLUDED_URLS)
    FastAPIInstrumentor.instrument_app(app, excluded_urls=excluded, exclude_spans=["receive", "send"])


def instrument_httpx() -> None:
    """Client spans on every httpx client, each call carrying `traceparent` to its upstream; no-op when off."""
    if not ENABLED:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def shutdown() -> None:
    """Flushes what is buffered (the batch processor would lose its last spans at exit)."""
    if ENABLED:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush(5_000)


def span(name: str, attributes: Mapping[str, Any] | None = None, *, link: str | None = None) -> Any:
    """A child of the current span, made current; `link` (a traceparent) adds a span link to another trace."""
    if not ENABLED:
        return _OFF
    links = _links(link)
    return _tracer.start_as_current_span(name, attributes=attributes, links=links)


def root_span(name: str, attributes: Mapping[str, Any] | None = None, *, link: str | None = None) -> Any:
    """A new trace (a background job), linked to the request that caused it when `link` holds its traceparent."""
    if not ENABLED:
        return _OFF
    from opentelemetry.context import Context

    return _tracer.start_as_current_span(name, context=Context(), attributes=attributes, links=_links(link))


def record(name: str, start: float, end: float, attributes: Mapping[str, Any] | None = None) -> None:
    """A finished child span from `time.perf_counter()` marks taken elsewhere (a batch's queue wait, its run)."""
    if not ENABLED:
        return
    started = _tracer.start_span(name, start_time=int(start * 1e9) + _PERF_TO_EPOCH_NS, attributes=attributes)
    started.end(end_time=int(end * 1e9) + _PERF_TO_EPOCH_NS)


def traceparent() -> str | None:
    """The current span as a W3C traceparent (stored with a job so its spans can link back), None when off."""
    if not ENABLED:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return _format(ctx) if ctx.is_valid else None


@contextmanager
def detached() -> Iterator[None]:
    """No current span inside (work that outlives the request, e.g. a task it starts)."""
    if not ENABLED:
        yield
        return
    from opentelemetry import context

    token = context.attach(context.Context())
    try:
        yield
    finally:
        context.detach(token)


def _format(ctx: Any) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def _links(parent: str | None) -> list[Any]:
    if not parent:
        return []
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    linked = trace.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": parent}))
    ctx = linked.get_span_context()
    return [trace.Link(ctx)] if ctx.is_valid else []


def _traceparent_response() -> Any:
    """The server span's id in a `traceparent` response header, so a caller can find its trace."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.propagators import ResponsePropagator, default_setter

    class TraceparentResponse(ResponsePropagator):
        def inject(self, carrier: Any, context: Any = None, setter: Any = default_setter) -> None:
            ctx = trace.get_current_span(context).get_span_context()
            if ctx.is_valid:
                setter.set(carrier, "traceparent", _format(ctx))

    return TraceparentResponse()


class TraceIds(logging.Filter):
    """Adds `trace_id` and `span_id` to a record's JSON fields when it is logged inside a span."""

    def filter(self, record: logging.LogRecord) -> bool:
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            fields = getattr(record, "fields", None)
            ids = {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
            record.fields = {**fields, **ids} if isinstance(fields, dict) else ids
        return True


def _install_log_filter() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TraceIds) for f in handler.filters):
            handler.addFilter(TraceIds())
