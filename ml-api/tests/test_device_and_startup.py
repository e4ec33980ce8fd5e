"""Provider selection, and startup that fails loudly with the reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import EMBED_DIR, ROOT, base_env, free_port

from ml_api.device import DeviceUnavailable, plan_device

GPU = ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_auto_picks_cuda_and_fp16_when_both_runtimes_see_a_gpu() -> None:
    plan = plan_device("auto", GPU, torch_cuda=True)
    assert plan.device == "cuda" and plan.ort_providers[0] == "CUDAExecutionProvider" and plan.rerank_fp16


def test_auto_falls_back_to_cpu_and_says_why() -> None:
    plan = plan_device("auto", ["CPUExecutionProvider"], torch_cuda=False)
    assert plan.device == "cpu" and plan.ort_providers == ["CPUExecutionProvider"] and not plan.rerank_fp16
    assert "onnxruntime-gpu" in plan.reason and "torch.cuda" in plan.reason
    half = plan_device("auto", GPU, torch_cuda=False)  # never split the models across devices
    assert half.device == "cpu" and "torch.cuda" in half.reason


def test_explicit_choices() -> None:
    assert plan_device("cpu", GPU, torch_cuda=True).device == "cpu"
    assert not plan_device("cuda", GPU, torch_cuda=True, fp16=False).rerank_fp16
    with pytest.raises(DeviceUnavailable, match="DEVICE=cuda"):
        plan_device("cuda", ["CPUExecutionProvider"], torch_cuda=False)
    with pytest.raises(ValueError):
        plan_device("tpu", GPU, torch_cuda=True)


def _start_and_expect_failure(tmp_path, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "ml_api", "serve"],
        env=base_env(PORT=str(free_port()), **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def test_auto_follows_what_this_machines_runtimes_report() -> None:
    """`detect` decides from the installed runtimes, whatever the host has: CPU here, CUDA on a GPU box."""
    import onnxruntime as ort

    from ml_api.device import cuda_driver_sees_gpu, detect, torch_available

    if torch_available():
        import torch

        cuda = torch.cuda.is_available()
    else:
        cuda = cuda_driver_sees_gpu()
    assert detect("auto", fp16=True).device == plan_device("auto", ort.get_available_providers(), cuda).device


NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # a machine without a usable GPU, on any host (a GPU box included)


def test_a_machine_without_a_usable_gpu_resolves_to_cpu() -> None:
    code = "from ml_api.device import detect; print(detect('auto', fp16=True).device)"
    out = subprocess.run([sys.executable, "-c", code], env=base_env(**NO_GPU), capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert out.stdout.split()[-1] == "cpu"


def test_cuda_requested_without_gpu_fails_loudly(tmp_path) -> None:
    out = _start_and_expect_failure(tmp_path, DEVICE="cuda", **NO_GPU)
    assert "startup failed" in out and "DEVICE=cuda but no usable GPU" in out


def test_missing_model_path_fails_loudly(tmp_path) -> None:
    out = _start_and_expect_failure(tmp_path, EMBED_MODEL=str(tmp_path / "nope"))
    assert "startup failed" in out and "does not exist" in out and "make models" in out


def test_broken_onnx_file_fails_loudly(tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(EMBED_DIR, broken, ignore=shutil.ignore_patterns("model.onnx"))
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    out = _start_and_expect_failure(tmp_path, EMBED_MODEL=str(broken))
    assert "startup failed" in out and "onnxruntime cannot load" in out


def test_broken_reranker_fails_loudly(tmp_path) -> None:
    bad = tmp_path / "rr"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "bert"}))
    out = _start_and_expect_failure(tmp_path, RERANK_MODEL=str(bad))
    assert "startup failed" in out and "FlagReranker cannot load" in out
