"""Export a Hugging Face encoder to ONNX with pooling inside the graph, and write its manifest.

The manifest records pooling, dimension and maximum length as sentence-transformers would use them, so the
service never has to guess them at request time; the export is checked against torch before it is kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ml_api.errors import ModelError
from ml_api.registry import MANIFEST, ONNX_FILE, POOLED, TOKENS, resolve_source

log = logging.getLogger("ml_api.tools.export")


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


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
    """Export a Hugging Face encoder to ONNX with pooling inside the graph.

    Two outputs: `sentence_embedding` (B x D, what /embed reads; ONNX Runtime copies out only the outputs asked
    for) and `token_embeddings` (B x L x D, the last hidden state TEI's /embed_all returns).
    """
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    src = resolve_source(source)
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
                return hidden[:, 0], hidden
            if pooling == "last":
                last = attention_mask.sum(dim=1) - 1
                return hidden[torch.arange(hidden.shape[0]), last], hidden
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9), hidden

    sample = tokenizer(
        ["a short one", "and a somewhat longer sentence to make padding appear"], padding=True, return_tensors="pt"
    )
    input_names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_token_types else [])
    args = tuple(sample[n] for n in input_names)
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes[POOLED] = {0: "batch"}
    axes[TOKENS] = {0: "batch", 1: "sequence"}
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (ONNX_FILE + ".tmp")
    with torch.no_grad():
        torch.onnx.export(
            Pooled().eval(),
            args,
            str(tmp),
            input_names=input_names,
            output_names=[POOLED, TOKENS],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
        expected = [t.numpy() for t in Pooled().eval()(*args)]
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run([POOLED, TOKENS], {n: sample[n].numpy().astype(np.int64) for n in input_names})
    max_diff, tokens_diff = (float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    if max(max_diff, tokens_diff) > 1e-4:
        raise ModelError(f"ONNX export of {src} does not match torch (max abs diff {max(max_diff, tokens_diff):.2e})")
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
        "output": POOLED,
        "outputs": [POOLED, TOKENS],
        "opset": opset,
        "export_max_abs_diff": max_diff,  # of the pooled output; the per-token one is usually a little larger
        "export_max_abs_diff_tokens": tokens_diff,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_manifest(out, manifest)
    log.info("exported embedder", extra={"fields": {"source": str(source), "out": str(out), "max_abs_diff": max_diff}})
    return manifest
