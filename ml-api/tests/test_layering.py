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
    "ml_api.core.tracing",
    "ml_api.batching",
    "ml_api.device",
    "ml_api.embedding",
    "ml_api.embedding_types",
    "ml_api.engine",
    "ml_api.errors",
    "ml_api.health",
    "ml_api.loading",
    "ml_api.onnx_reranker",
    "ml_api.registry",
    "ml_api.reranking",
    "ml_api.session",
    "ml_api.torch_reranker",
    "ml_api.traces",
    "ml_api.truncation",
]
# The modules the service is entered through: the console script's (`ml-api`, `python -m ml_api`) and the app factory;
# test_a_running_server_never_imported_the_tools covers a whole `python -m ml_api serve` run.
ENTRY_POINTS = ["ml_api.cli", "ml_api.api.app"]


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


@pytest.mark.parametrize("entry", ENTRY_POINTS)
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


def test_domain_modules_import_no_backend_cycle() -> None:
    """reranking (the shared half) knows neither backend; each backend imports it, never the other way."""
    for shared in ("ml_api.reranking", "ml_api.embedding", "ml_api.session"):
        loaded = _loaded_after(shared)
        assert not {"ml_api.onnx_reranker", "ml_api.torch_reranker", "ml_api.loading"} & loaded, shared


def test_no_module_changes_the_environment_at_import() -> None:
    code = (
        "import importlib, json, os\n"
        "before = dict(os.environ)\n"
        f"for name in {DOMAIN + ENTRY_POINTS!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_a_running_server_never_imported_the_tools(tmp_path) -> None:
    """Not only imports: a whole `ml-api serve` start (models loaded, a request served) leaves the tools out.

    The server is started through the console script's code path (`python -m ml_api serve`); a sitecustomize
    on its path dumps `sys.modules` at shutdown, so what any lazy import pulled in while serving is counted too.
    """
    from conftest import start_server, stop_server

    hook = tmp_path / "hook"
    hook.mkdir()
    dump = tmp_path / "modules.json"
    (hook / "sitecustomize.py").write_text(  # at SIGTERM, after uvicorn's graceful shutdown hands it back
        "import json, os, signal, sys\n"
        "def _dump(signum, frame):\n"
        f"    open({str(dump)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
        "    signal.signal(signum, signal.SIG_DFL)\n"
        "    os.kill(os.getpid(), signum)\n"
        "signal.signal(signal.SIGTERM, _dump)\n"
    )
    import os

    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH", "")]))
    srv = start_server(tmp_path, "layering", PYTHONPATH=path)
    try:
        with srv.client() as client:
            assert client.post("/embed", json={"inputs": "hello"}).status_code == 200
            assert client.post("/rerank", json={"query": "q", "texts": ["a", "b"]}).status_code == 200
    finally:
        stop_server(srv)
    loaded = set(json.loads(dump.read_text()))
    assert "ml_api.engine" in loaded
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
