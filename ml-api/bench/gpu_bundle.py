"""What `scripts/gpu-check` carries to a bare GPU machine, and how it installs it there.

The target has an NVIDIA GPU and a Python with torch, but no network and no ml-api dependencies beyond what a
torch image happens to hold; what travels must fit in 64 MiB with the repository. So `--pack`, run where the
package registry is reachable, downloads the service's small pure-Python runtime (FastAPI, pydantic, uvicorn,
FlagEmbedding and the few packages its import pulls in) as wheels pinned and hash-checked by the GPU lock
(`requirements/gpu.txt`), and copies the test cross-encoder (45 MB, fp16 on disk). Not carried: torch,
transformers, onnxruntime(-gpu) and the embedder's ONNX file (87 MB): the target's own torch and transformers
are used, and the embedder is exported there from the cross-encoder's BERT encoder.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

BUDGET_BYTES = 60 * 2**20  # 64 MiB for everything that travels, less the repository itself (about 3 MiB)
# The service's runtime (ml_api.api.app, uvicorn) and what `from FlagEmbedding import FlagReranker` imports,
# minus the heavy packages a torch machine brings (torch, transformers, tokenizers, numpy, pandas, pyarrow, ...).
# On the target each wheel is installed only where that package is missing or older.
CARRY = (
    "annotated-doc",
    "annotated-types",
    "anyio",
    "click",
    "datasets",
    "dill",
    "fastapi",
    "fastapi-offline",
    "flagembedding",
    "h11",
    "multiprocess",
    "opentelemetry-api",
    "orjson",
    "prometheus-client",
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "python-dotenv",
    "starlette",
    "typing-extensions",
    "typing-inspection",
    "uvicorn",
)
RERANKER_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "manifest.json")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock_text: str, names: tuple[str, ...]) -> list[str]:
    """The lock's entries for `names`, each `name==version` with its `--hash` lines, as pip reads them."""
    wanted, entries, current = {normalize(n) for n in names}, [], None
    for line in lock_text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            current = [line] if normalize(match.group(1)) in wanted else None
            if current is not None:
                entries.append(current)
        elif current is not None and line.strip().startswith("--hash"):
            current.append(line)
    missing = wanted - {normalize(re.split(r"==", e[0])[0]) for e in entries}
    if missing:
        raise SystemExit(f"gpu-check --pack: not in the lock: {sorted(missing)}")
    return ["\n".join(e).rstrip(" \\") for e in entries]


def pack(bundle: Path, lock: Path, reranker: Path, python_version: str = "3.12") -> list[str]:
    """Fill `bundle` with the wheels and the cross-encoder; returns the lines to print. Needs the registry."""
    wheels, model = bundle / "wheels", bundle / "reranker"
    shutil.rmtree(bundle, ignore_errors=True)
    wheels.mkdir(parents=True)
    requirements = bundle / "requirements.txt"
    requirements.write_text("\n".join(locked(lock.read_text(), CARRY)) + "\n")
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--require-hashes"]
    cmd += ["--python-version", python_version, "--implementation", "cp", *platforms, "-d", str(wheels)]
    subprocess.run([*cmd, "-r", str(requirements)], check=True)
    model.mkdir()
    for name in RERANKER_FILES:
        if (reranker / name).is_file():
            shutil.copy2(reranker / name, model / name)
    if not (model / "config.json").is_file():
        raise SystemExit(f"gpu-check --pack: {reranker} is not a cross-encoder checkpoint (no config.json)")
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    lines = [f"{w.name}: {w.stat().st_size / 2**20:.2f} MiB" for w in sorted(wheels.iterdir())]
    lines.append(f"reranker (from {reranker}): {sum(f.stat().st_size for f in model.iterdir()) / 2**20:.1f} MiB")
    lines.append(f"total {size / 2**20:.1f} MiB of a {BUDGET_BYTES / 2**20:.0f} MiB budget in {bundle}")
    if size > BUDGET_BYTES:
        raise SystemExit("\n".join([*lines, "gpu-check --pack: over budget"]))
    return lines


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    name, version = wheel.name.split("-")[:2]
    return normalize(name), version


def to_install(wheels: list[Path], have: dict[str, str | None]) -> list[Path]:
    """Wheels whose package is missing or older than the carried one; the target's own newer ones stay."""
    from packaging.version import InvalidVersion, Version

    chosen = []
    for wheel in wheels:
        name, carried = wheel_name_version(wheel)
        present = have.get(name)
        try:
            if present is None or Version(present) < Version(carried):
                chosen.append(wheel)
        except InvalidVersion:
            chosen.append(wheel)
    return chosen


def installed_versions(wheels: list[Path]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for wheel in wheels:
        name = wheel_name_version(wheel)[0]
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def unpack_wheel(wheel: Path, target: Path) -> None:
    """What `pip install --target` does for these wheels, without needing pip: a wheel is a site-packages tree.

    `*.data/purelib` and `*.data/platlib` go to the root; scripts, headers and data are not needed here.
    """
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            parts = Path(member.filename).parts
            if member.is_dir() or ".." in parts:
                continue
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            out = target.joinpath(*parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(member))


def install(wheels_dir: Path, target: Path) -> list[str]:
    """Unpack the carried wheels the machine lacks into `target` (the caller puts it first on sys.path)."""
    wheels = sorted(wheels_dir.glob("*.whl"))
    chosen = to_install(wheels, installed_versions(wheels))
    for wheel in chosen:
        unpack_wheel(wheel, target)
    return ["==".join(wheel_name_version(w)) for w in chosen]
