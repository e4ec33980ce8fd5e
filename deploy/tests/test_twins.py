"""The two services' shared runtime helpers are one file kept twice on purpose (each image ships only its own
package); this fails the moment the copies drift."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TWINS = [ROOT / "ml-api/ml_api/core/runtime.py", ROOT / "backend/rag_backend/core/runtime.py"]


def test_runtime_helpers_are_identical() -> None:
    first, second = (p.read_bytes() for p in TWINS)
    assert first == second, f"{TWINS[0]} and {TWINS[1]} drifted: copy the edited one over the other"
