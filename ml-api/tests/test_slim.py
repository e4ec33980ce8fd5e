"""The slim variant: `ml-api serve` from requirements/cpu-slim.txt alone (no torch, FlagEmbedding or transformers).

The slim venv is built and checked by scripts/check-ml-api-size.sh (kept in .bench/, rebuilt only when the lock
changes), as `make check-deploy` does. The full venv (this one) exports the ONNX reranker; the slim service must
then answer like the full one, whose reranker is FlagReranker on the same checkpoint.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import RERANK_DIR, ROOT, Server, base_env, free_port, stop_server
from devharness import spawn, wait_healthy

SLIM_VENV = ROOT / ".bench" / "ml-api-slim-venv"
SLIM_PY = SLIM_VENV / "bin" / "python"
TEXTS = ["The giant panda is a bear species endemic to China.", "Paris is the capital of France.", "hi", "ok " * 300]
QUERIES = ["what is panda?", "capital of France"]


def slim_env(**overrides: str) -> dict[str, str]:
    """The session servers' settings, with ml_api from the source tree (the image installs the same files)."""
    env = base_env(PYTHONPATH=str(ROOT / "ml-api"), **overrides)
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="module")
def slim_python() -> Path:
    res = subprocess.run(
        ["bash", "scripts/check-ml-api-size.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return SLIM_PY


@pytest.fixture(scope="module")
def onnx_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test cross-encoder exported to ONNX by the full variant, as `ml-api models add-reranker --onnx` does."""
    out = tmp_path_factory.mktemp("slim") / "reranker-onnx"
    cmd = [sys.executable, "-m", "ml_api", "models", "add-reranker", str(RERANK_DIR), "--onnx", "--out", str(out)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=base_env())
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def slim_server(slim_python: Path, onnx_reranker: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    url, log = f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("slim-srv") / "slim.log"
    env = slim_env(PORT=str(port), RERANK_MODEL=str(onnx_reranker))
    srv = spawn([str(slim_python), "-m", "ml_api", "serve"], env, log, cwd=ROOT, url=url, name="ml-api (slim)")
    srv = wait_healthy(srv, "/health", 180, interval=0.5)
    yield srv
    stop_server(srv)


def test_the_full_variant_packages_are_not_importable(slim_python: Path) -> None:
    for module in ("torch", "transformers", "FlagEmbedding"):
        res = subprocess.run([str(slim_python), "-c", f"import {module}"], capture_output=True, text=True)
        assert res.returncode != 0 and f"No module named '{module}'" in res.stderr, module


def test_the_device_is_chosen_without_torch(slim_python: Path) -> None:
    """No GPU here: the slim variant asks the CUDA driver itself, and says so in the reason /info reports."""
    code = "from ml_api.device import detect; p = detect('auto', True); print(p.device, '|', p.reason)"
    res = subprocess.run([str(slim_python), "-c", code], env=slim_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    device, reason = res.stdout.strip().split(" | ")
    assert device == "cpu" and "CUDA driver (libcuda.so.1)" in reason and "torch.cuda" not in reason, reason


def test_slim_service_embeds_like_the_full_one(slim_server: Server, server: Server) -> None:
    with slim_server.client() as slim, server.client() as full:
        assert slim.get("/health").status_code == 200
        got = np.asarray(slim.post("/embed", json={"inputs": TEXTS}).json())
        want = np.asarray(full.post("/embed", json={"inputs": TEXTS}).json())
    assert got.shape == want.shape == (len(TEXTS), 384)
    cosine = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.9999, cosine


def test_slim_onnx_reranker_ranks_like_flagreranker(slim_server: Server, server: Server) -> None:
    with slim_server.client() as slim, server.client() as full:
        info = slim.get("/info").json()
        assert info["reranking"]["backend"] == "onnx" and full.get("/info").json()["reranking"]["backend"] != "onnx"
        for query in QUERIES:
            body = {"query": query, "texts": TEXTS, "raw_scores": True}
            got, want = slim.post("/rerank", json=body).json(), full.post("/rerank", json=body).json()
            assert [r["index"] for r in got] == [r["index"] for r in want], (query, got, want)
            assert np.allclose([r["score"] for r in got], [r["score"] for r in want], atol=1e-3), (got, want)


def _slim_start_fails(slim_python: Path, **env: str) -> str:
    cmd = [str(slim_python), "-m", "ml_api", "serve"]
    res = subprocess.run(
        cmd, env=slim_env(PORT=str(free_port()), **env), cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert res.returncode != 0
    return res.stdout + res.stderr


def test_a_checkpoint_reranker_is_refused_with_the_way_out(slim_python: Path) -> None:
    out = _slim_start_fails(slim_python, RERANK_MODEL=str(RERANK_DIR))
    assert "startup failed" in out and "slim variant (no torch)" in out, out[-2000:]
    assert f"ml-api models add-reranker {RERANK_DIR} --onnx --out DIR" in out and "full variant" in out


def test_a_checkpoint_embedder_is_refused_with_the_way_out(slim_python: Path, tmp_path: Path) -> None:
    """A raw checkpoint would be exported at first start, which needs torch: the slim one says what to do."""
    out = _slim_start_fails(slim_python, EMBED_MODEL=str(RERANK_DIR), MODELS_DIR=str(tmp_path))
    assert "startup failed" in out and "slim variant (no torch)" in out, out[-2000:]
    assert f"ml-api models export {RERANK_DIR} --out DIR" in out
    assert not list(tmp_path.iterdir())  # nothing half-exported
