"""The readiness rule (rag_backend.readiness) on its own: which component failing makes the service what."""

from __future__ import annotations

import pytest

from rag_backend.readiness import ESSENTIAL, decide, gather_health
from rag_backend.redaction import redact

UP = (True, "fine")
DOWN = (False, "gone")


def results(**down: bool) -> dict[str, tuple[bool, str]]:
    return {name: DOWN if down.get(name) else UP for name in (*ESSENTIAL, "cache", "llm")}


def test_essential_components_decide_between_ready_and_unavailable() -> None:
    assert decide(results()) == "ready"
    for name in ESSENTIAL:
        assert decide(results(**{name: True})) == "unavailable", name
    assert decide(results(store=True, cache=True)) == "unavailable"


def test_cache_degrades_and_llm_never_counts() -> None:
    assert decide(results(cache=True)) == "degraded"
    assert decide(results(llm=True)) == "ready"


@pytest.mark.anyio
async def test_a_check_that_raises_reports_instead_of_failing() -> None:
    async def ok() -> tuple[bool, str]:
        return UP

    async def broken() -> tuple[bool, str]:
        raise ConnectionResetError("peer went away")

    out = await gather_health({"a": ok(), "b": broken()})
    assert out == {"a": UP, "b": (False, "ConnectionResetError: peer went away")}


def test_redaction_hides_places_but_keeps_endpoint_names_readable() -> None:
    text = "qdrant-edge at /srv/rag/qdrant failed; ml-api http://u:pw@ml:8001 (32 texts per request, from /info)"
    shown = redact(text, ["pw"], hide_places=True)
    assert shown == "qdrant-edge at <path> failed; ml-api <url> (32 texts per request, from /info)"
    assert redact(text, ["pw"], hide_places=False) == text.replace("u:pw@", "***@")
