"""Import boundaries: serving never loads the model tooling, and domain code never loads the web framework.

Each check runs in a fresh interpreter, so nothing this test process imported earlier can hide a leak.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

DOMAIN = [
    "ml_api.args",
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
