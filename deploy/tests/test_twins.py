"""The two services' shared runtime helpers are files kept twice on purpose (each image ships only its own
package); this fails the moment a pair of copies drifts."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TWINS = ["core/runtime.py", "core/tracing.py"]


@pytest.mark.parametrize("name", TWINS)
def test_runtime_helpers_are_identical(name: str) -> None:
    first, second = ROOT / "ml-api/ml_api" / name, ROOT / "backend/rag_backend" / name
    assert first.read_bytes() == second.read_bytes(), (
        f"{first} and {second} drifted: copy the edited one over the other"
    )
