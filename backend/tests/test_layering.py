"""Import boundaries: nothing outside api/ (core/ included: the twin runtime.py shared with ml-api) loads the web
framework; HTTP lives at the edge. Checked in a fresh interpreter, so nothing this process imported can hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rag_backend"
EDGE = ("rag_backend.api", "rag_backend.cli", "rag_backend.__main__")  # the HTTP edge and the entry point


def _modules() -> list[str]:
    names = {
        ".".join(("rag_backend", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for p in PACKAGE.rglob("*.py")
        if "migrations" not in p.parts  # Alembic scripts, loaded by Alembic only
    }
    return sorted(m for m in names if not m.startswith(EDGE))


def test_domain_and_core_modules_know_no_http() -> None:
    modules = _modules()
    assert "rag_backend.core.runtime" in modules and "rag_backend.ingestion.pipeline" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    leaked = sorted(m for m in loaded if m.split(".")[0] in ("fastapi", "starlette"))
    assert not leaked, leaked
