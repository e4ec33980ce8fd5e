"""Runtime model lookup: turn EMBED_MODEL / RERANK_MODEL into a directory the loaders can read.

Everything the service loads goes through a directory with a `manifest.json`, so it never has to guess
pooling, dimension or maximum length at request time. Writing those directories is tooling
(`ml_api.tools`); serving reaches the exporter only when EMBED_MODEL names a checkpoint or hub id that was
never exported, and imports it only then, so a normal start never loads torch.onnx.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from ml_api.errors import ModelError

log = logging.getLogger("ml_api.registry")

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
# A reranker checkpoint's ONNX export kept inside it (`make models` writes models/reranker/onnx), which the slim
# variant serves in place of the checkpoint, so one RERANK_MODEL fits both variants.
ONNX_TWIN = "onnx"
POOLED, TOKENS = "sentence_embedding", "token_embeddings"  # the embedder graph's outputs (/embed, /embed_all)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The directory's manifest, None when it has none (a raw checkpoint)."""
    file = path / MANIFEST
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file} is not valid JSON: {exc}") from exc


def resolve_source(source: str) -> Path:
    """A local checkout as is, otherwise a Hugging Face id fetched into the HF cache (needs internet)."""
    local = Path(source).expanduser()
    if local.is_dir():
        return local.resolve()
    if local.exists() or source.startswith((".", "/")) or source.count("/") > 1:
        raise ModelError(f"model path {source!r} does not exist or is not a directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source))
    except Exception as exc:
        raise ModelError(
            f"{source!r} is not a local directory and could not be fetched from the Hugging Face hub: {exc}"
        ) from exc


def torch_available() -> bool:
    """False in the slim variant (requirements/*-slim.txt), which serves ONNX directories only."""
    return importlib.util.find_spec("torch") is not None


def require_torch(setting: str, spec: str, export: str) -> None:
    """The slim variant's answer to a checkpoint: say how to get the ONNX directory it can serve."""
    if torch_available():
        return
    raise ModelError(
        f"{setting}={spec!r} is a PyTorch checkpoint, and this is ml-api's slim variant (no torch), which serves "
        f"ONNX directories only: export it where the full variant is installed (`{export}`) and set {setting} to "
        "that directory, or run the full variant (image built with VARIANT=full, or requirements/cpu.txt)."
    )


def _export(source: str, out: Path, name: str | None = None) -> None:
    require_torch("EMBED_MODEL", source, f"ml-api models export {source} --out DIR")
    from ml_api.tools.export import export_embedder  # tooling: only for a checkpoint never exported

    export_embedder(source, out, name=name)


def resolve_embedder(spec: str, models_dir: Path) -> Path:
    """Return a directory holding model.onnx + manifest, exporting a checkpoint or hub id when needed."""
    path = Path(spec).expanduser()
    if path.is_dir():
        manifest = read_manifest(path)
        if manifest and manifest.get("kind") == "embedding":
            if not (path / manifest.get("file", ONNX_FILE)).is_file():
                raise ModelError(
                    f"{path} has a manifest but no {manifest.get('file', ONNX_FILE)}; re-run `ml-api models export`"
                )
            return path
        target = models_dir / path.name
        if read_manifest(target):
            return target
        log.warning(
            "EMBED_MODEL is a raw checkpoint; exporting to ONNX",
            extra={"fields": {"src": str(path), "out": str(target)}},
        )
        _export(str(path), target)
        return target
    if spec.startswith((".", "/")) or "models/" in spec or spec.count("/") != 1:
        raise ModelError(
            f"EMBED_MODEL={spec!r} does not exist. Run `make models` (or `ml-api models prepare`) to create the "
            "default, or point EMBED_MODEL at a directory made by `ml-api models export`."
        )
    target = models_dir / spec.replace("/", "__")
    if read_manifest(target):
        return target
    _export(spec, target, name=spec)
    return target


def resolve_reranker(spec: str) -> Path:
    """A cross-encoder directory (config.json inside, or an ONNX export's manifest), or a hub id fetched."""
    path = Path(spec).expanduser()
    if path.is_dir():
        manifest = read_manifest(path) or {}
        if manifest.get("kind") == "reranker" and manifest.get("format") == "onnx":
            if not (path / manifest.get("file", ONNX_FILE)).is_file():
                raise ModelError(f"{path} has an ONNX manifest but no {manifest.get('file', ONNX_FILE)}")
            return path
        if not (path / "config.json").is_file():
            raise ModelError(f"RERANK_MODEL={spec!r} has no config.json; not a Hugging Face cross-encoder directory")
        twin = read_manifest(path / ONNX_TWIN) or {}
        if not torch_available() and twin.get("format") == "onnx" and (path / ONNX_TWIN / ONNX_FILE).is_file():
            return path / ONNX_TWIN
        _reranker_needs_torch(spec)
        return path
    if spec.startswith((".", "/")) or "models/" in spec or spec.count("/") != 1:
        raise ModelError(
            f"RERANK_MODEL={spec!r} does not exist. Run `make models` (copies the test reranker from the shared "
            "folder when present) or `ml-api models add-reranker <dir-or-hf-id>`, or set RERANK_MODEL."
        )
    _reranker_needs_torch(spec)
    return resolve_source(spec)


def _reranker_needs_torch(spec: str) -> None:
    """FlagReranker serves a checkpoint; without torch only an `add-reranker --onnx` directory can be served."""
    require_torch("RERANK_MODEL", spec, f"ml-api models add-reranker {spec} --onnx --out DIR")


def provenance(path: Path) -> dict[str, Any]:
    """Where a served model came from, as its manifest recorded it: /info shows it, startup warns on a fallback."""
    manifest = read_manifest(path) or {}
    origin: dict[str, Any] = {"source": manifest.get("source"), "fallback": bool(manifest.get("fallback", False))}
    if origin["fallback"]:
        origin["fallback_reason"] = manifest.get("fallback_reason")
    return origin
