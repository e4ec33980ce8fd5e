"""Runtime model lookup: turn EMBED_MODEL / RERANK_MODEL into a directory the loaders can read.

Everything the service loads goes through a directory with a `manifest.json`, so it never has to guess
pooling, dimension or maximum length at request time. Writing those directories is tooling
(`ml_api.tools`), which this module never imports: `export_target` tells `ml-api serve` that a checkpoint or
hub id still needs exporting, and the command runs the exporter before the runtime starts.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from ml_api.errors import ModelError

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
# A reranker checkpoint's ONNX export kept inside it (`make models` writes models/reranker/onnx), which the slim
# variant serves in place of the checkpoint, so one RERANK_MODEL fits both variants.
ONNX_TWIN = "onnx"
POOLED, TOKENS = "sentence_embedding", "token_embeddings"  # the embedder graph's outputs (/embed, /embed_all)


DTYPES = {"fp32": "float32", "fp16": "float16", "int8": "int8"}  # manifest precision -> TEI's model_dtype words


def dtype(manifest: dict[str, Any] | None, fp16: bool = False) -> str:
    """The weights' type as served: the export's precision, float16 where it was converted at load."""
    if fp16:
        return "float16"
    precision = (manifest or {}).get("precision") or "fp32"
    return DTYPES.get(precision, precision)


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


def export_target(spec: str, models_dir: Path) -> tuple[Path, str | None] | None:
    """Where an embedder spec that is not yet an ONNX export would be exported to (and under which name).

    None when `spec` is already an exported directory. Only `ml-api serve` acts on it, through the tooling,
    before the runtime starts: the runtime itself never exports (nor imports the exporter).
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        manifest = read_manifest(path)
        if manifest and manifest.get("kind") == "embedding":
            return None
        return models_dir / path.name, None
    if spec.startswith((".", "/")) or "models/" in spec or spec.count("/") != 1:
        raise ModelError(
            f"EMBED_MODEL={spec!r} does not exist. Run `make models` (or `ml-api models prepare`) to create the "
            "default, or point EMBED_MODEL at a directory made by `ml-api models export`."
        )
    return models_dir / spec.replace("/", "__"), spec


def resolve_embedder(spec: str, models_dir: Path) -> Path:
    """The directory holding model.onnx + manifest that serves `spec` (a raw checkpoint's earlier export)."""
    target = export_target(spec, models_dir)
    path = Path(spec).expanduser() if target is None else target[0]
    manifest = read_manifest(path) if path.is_dir() else None
    if not manifest:
        raise ModelError(
            f"EMBED_MODEL={spec!r} is a checkpoint that was never exported to ONNX: `ml-api serve` exports it at "
            f"start, or run `ml-api models export {spec} --out {path}`"
        )
    if not (path / manifest.get("file", ONNX_FILE)).is_file():
        raise ModelError(
            f"{path} has a manifest but no {manifest.get('file', ONNX_FILE)}; re-run `ml-api models export`"
        )
    return path


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
