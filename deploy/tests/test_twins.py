"""The two services' shared helpers are files kept twice on purpose (each image ships only its own package): the
runtime (logs, no HTTP), tracing and the HTTP edge (api/wire.py). This fails the moment a pair drifts."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TWINS = ["core/runtime.py", "core/tracing.py", "api/wire.py"]


@pytest.mark.parametrize("twin", TWINS)
def test_shared_helpers_are_identical(twin: str) -> None:
    pair = [ROOT / "ml-api/ml_api" / twin, ROOT / "backend/rag_backend" / twin]
    first, second = (p.read_bytes() for p in pair)
    assert first == second, f"{pair[0]} and {pair[1]} drifted: copy the edited one over the other"
