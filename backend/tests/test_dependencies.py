"""The backend must stay torch-free: nothing in its locks or its installed environment pulls torch or CUDA."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*|jax|jaxlib|tensorflow.*|onnxruntime.*"
                       r"|transformers|sentence-transformers|flagembedding)$")  # fmt: skip


def _locked(path: Path) -> set[str]:
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", path.read_text(), re.M)}


def test_locks_have_no_torch_or_cuda() -> None:
    for lock in ("prod.txt", "dev.txt"):
        names = _locked(BACKEND / "requirements" / lock)
        assert names, lock
        assert not {n for n in names if FORBIDDEN.match(n)}, lock


def test_installed_environment_has_no_torch_or_cuda() -> None:
    installed = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    assert "qdrant-edge-py" in installed  # the check looks at the right environment
    assert not {n for n in installed if FORBIDDEN.match(n)}


def test_uv_tree_shows_no_torch() -> None:
    """`uv pip tree` over the backend venv: the dependency tree as uv resolves it."""
    uv = BACKEND.parent / ".tools" / "bin" / "uv"
    tree = subprocess.run(
        [str(uv), "pip", "tree", "--python", sys.executable], capture_output=True, text=True, check=True
    ).stdout
    assert "qdrant-client" in tree
    names = {m.group(1).lower() for m in re.finditer(r"([A-Za-z0-9_.-]+) v\d", tree)}
    assert not {n for n in names if FORBIDDEN.match(n)}, tree


def test_locks_name_no_host_or_local_path() -> None:
    for lock in (BACKEND / "requirements").glob("*.txt"):
        text = lock.read_text()
        assert "://" not in text and "--find-links" not in text, lock
        assert not re.search(r"(^|[\s=])/(home|root|opt|work|tmp)/", text, re.M), f"{lock} names a local path"
