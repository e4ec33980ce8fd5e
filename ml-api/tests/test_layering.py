"""Import boundaries: serving never loads the model tooling, and nothing outside api/ (core/ included: the twin
runtime.py) loads the web framework.

Each check runs in a fresh interpreter, so nothing this test process imported earlier can hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ml_api"
EDGE = ("ml_api.api", "ml_api.tools", "ml_api.cli", "ml_api.__main__")  # HTTP, offline tooling, the entry point
DOMAIN = [
    "ml_api.args",
    "ml_api.core",
    "ml_api.core.config",
    "ml_api.core.metrics",
    "ml_api.core.runtime",
    "ml_api.batching",
    "ml_api.device",
    "ml_api.embedding",
    "ml_api.engine",
    "ml_api.errors",
    "ml_api.onnx_reranker",
    "ml_api.quantization",
    "ml_api.registry",
    "ml_api.reranking",
    "ml_api.truncation",
]


def _loaded_after(*modules: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _tooling(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m == "ml_api.tools" or m.startswith("ml_api.tools."))


@pytest.mark.parametrize("entry", ["ml_api.api.app", "ml_api.cli"])
def test_serve_path_does_not_import_the_tools(entry: str) -> None:
    loaded = _loaded_after(entry)
    assert entry in loaded
    assert _tooling(loaded) == []


def test_every_module_outside_the_edge_is_checked() -> None:
    """A module added outside api/ joins DOMAIN, or this fails: the boundary cannot be left out by omission."""
    modules = {
        ".".join(("ml_api", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
        for p in PACKAGE.rglob("*.py")
    }
    outside = {m for m in modules if m != "ml_api" and not m.startswith(EDGE)}
    assert outside <= set(DOMAIN), sorted(outside - set(DOMAIN))


def test_domain_modules_know_no_http() -> None:
    loaded = _loaded_after(*DOMAIN)
    assert not {"fastapi", "starlette"} & loaded, sorted(m for m in loaded if m.startswith(("fastapi", "starlette")))
    assert _tooling(loaded) == []


def test_models_command_loads_the_tools() -> None:
    """The other side of the boundary: `ml-api models list` does reach the tooling (lazily, through cli)."""
    code = (
        "import sys\n"
        "from ml_api.cli import main\n"
        "main(['models', 'list', '--models-dir', '/nonexistent'])\n"
        "print('ml_api.tools.cli' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines()[-1] == "True"
