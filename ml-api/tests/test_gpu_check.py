"""scripts/gpu-check on a machine without a GPU: the CPU smoke run, the skips and their reasons, the bundle.

No GPU is lent to CI, so the CUDA branches cannot run here; what can is run for real: every check with the CPU
as the device under test (real models, a real `ml-api serve`), the GPU mode degrading to skips with exit 0,
and the carried wheels installed only where the machine lacks them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import EMBED_DIR, ROOT

sys.path.insert(0, str(ROOT / "ml-api" / "bench"))

from gpu_bundle import CARRY, install, locked, to_install
from gpu_check import Runner
from gpu_checks import Check, check_embedder


def gpu_check(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    cmd = [str(ROOT / "scripts" / "gpu-check"), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def test_cpu_smoke_runs_every_check_through_the_bare_machine_path(tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    args = ("--cpu-smoke", "--embed-model", "derive", "--bundle", str(tmp_path / "none"), "--json", str(out))
    res = gpu_check(*args)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads(out.read_text())
    status = {c["name"]: c["status"] for c in summary["checks"]}
    assert status == {
        "cuda": "skipped",
        "embedder export": "pass",
        "reranker[cpu]": "pass",
        "embedder[onnx cpu]": "pass",
        "serve[cpu]": "pass",
    }
    figures = {c["name"]: c["figures"] for c in summary["checks"]}
    assert "BERT encoder" in summary["models"]["embedder_origin"]  # what a bare GPU machine does
    rerank = figures["reranker[cpu]"]
    assert rerank["max_abs_logit_diff_vs_compute_score"] < 1e-3 and rerank["pairs_per_s"] > 0
    serve = figures["serve[cpu]"]
    assert serve["device"] == "cpu" and serve["min_cosine_vs_cpu"] > 0.9999
    assert serve["embed"]["items_per_s"] > 0 and serve["embed_one_text"]["p50_ms"] > 0
    assert "PASS     serve[cpu]" in res.stdout and "gpu-check: 4 passed, 0 failed, 1 skipped" in res.stdout


def test_gpu_mode_without_a_gpu_skips_with_reasons_and_exits_zero(tmp_path: Path) -> None:
    res = gpu_check("--bundle", str(tmp_path / "none"), "--budget", "60", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert any(line.startswith("skipped: cuda: no CUDA device") for line in lines)
    assert any(line.startswith("skipped: reranker[cuda fp16]: no CUDA device") for line in lines)
    assert any(line.startswith("skipped: serve[cpu]: time budget") for line in lines)
    assert any(line.startswith("skipped: serve[cuda]: no CUDA device") for line in lines)


def test_onnx_cuda_without_onnxruntime_gpu_is_skipped_saying_why() -> None:
    check = check_embedder(EMBED_DIR, "cuda", ["CPUExecutionProvider"], 1.0)
    assert check.status == "skipped" and "onnxruntime-gpu" in check.detail and "64 MiB" in check.detail


def test_a_failing_check_fails_the_run_and_skips_do_not() -> None:
    runner = Runner(budget_s=600)
    runner.add(Check("a", "skipped", "no GPU"))
    runner.run("b", 1, lambda: Check("b", "pass", "fine"))
    assert not runner.failed
    runner.run("c", 1, lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    assert runner.failed and runner.checks[-1].status == "fail" and "ZeroDivisionError" in runner.checks[-1].detail
    runner.run("d", 10_000, lambda: Check("d", "pass", "never runs"))
    assert runner.checks[-1].status == "skipped" and "time budget" in runner.checks[-1].detail


def _wheel(folder: Path, name: str, version: str, module: str) -> Path:
    """A real, minimal wheel: a module and its dist-info."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{module}/__init__.py", f"VERSION = {version!r}\n")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
        whl.writestr(f"{name}-{version}.data/scripts/tool", "#!/bin/sh\n")
    return path


def test_bundle_installs_only_what_the_machine_lacks(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "gpu_check_probe", "1.0", "gpu_check_probe")
    _wheel(wheels, "numpy", "0.1", "numpy")  # older than the installed numpy: must not shadow it
    site = tmp_path / "site"
    assert install(wheels, site) == ["gpu-check-probe==1.0"]
    assert sorted(p.name for p in site.iterdir()) == ["gpu_check_probe", "gpu_check_probe-1.0.dist-info"]
    code = (
        "import gpu_check_probe, importlib.metadata as m; print(gpu_check_probe.VERSION, m.version('gpu_check_probe'))"
    )
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(site)}, capture_output=True, text=True)
    assert out.stdout.split() == ["1.0", "1.0"], out.stderr
    newer = [Path("numpy-99.0-py3-none-any.whl"), Path("numpy-1.0-py3-none-any.whl")]
    assert to_install(newer, {"numpy": "2.0.0"}) == newer[:1]


def test_every_carried_package_is_pinned_with_hashes_in_the_gpu_lock() -> None:
    entries = locked((ROOT / "ml-api" / "requirements" / "gpu.txt").read_text(), CARRY)
    assert len(entries) == len(CARRY)
    assert all("==" in e.splitlines()[0] and "--hash=sha256:" in e for e in entries)
