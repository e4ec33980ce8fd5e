"""Export a Hugging Face encoder to ONNX with pooling inside the graph, and write its manifest.

The manifest records pooling, dimension and maximum length as sentence-transformers would use them, so the
service never has to guess them at request time; the export is checked against torch before it is kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_api.errors import ModelError
from ml_api.registry import MANIFEST, ONNX_FILE, POOLED, TOKENS, resolve_source
from ml_api.tools.quantize import SAMPLE_TEXTS, agreement, fuse_transformer, quantize_int8

log = logging.getLogger("ml_api.tools.export")

# Below this min cosine (over quantize.SAMPLE_TEXTS) an int8 model is refused; MiniLM measures 0.98-0.99.
MIN_INT8_COSINE = 0.95
# Encoders whose attention, LayerNorm and GELU patterns ONNX Runtime's "bert" optimizer fuses.
FUSABLE = ("bert", "roberta", "xlm-roberta", "camembert", "electra")


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


def fuse_in_place(
    path: Path, staging: Path, config: Any, check: Callable[[Path, str], tuple[float, float]]
) -> dict[str, Any]:
    """Fuse the graph at `path` where the optimizer knows the architecture and the result still matches torch.

    Otherwise the unfused graph stays and the manifest says why: fusion is on by default, so it must never be
    the reason an export fails.
    """
    kind = str(getattr(config, "model_type", ""))
    if kind not in FUSABLE:
        return {"applied": False, "reason": f"model_type {kind!r} is not one of ONNX Runtime's BERT-family fusions"}
    try:
        facts = fuse_transformer(path, staging, int(config.num_attention_heads), int(config.hidden_size))
        facts["max_abs_diff"], facts["max_abs_diff_tokens"] = check(staging, "the fused graph")
    except ModelError as exc:
        log.warning("graph fusion skipped", extra={"fields": {"reason": str(exc)}})
        return {"applied": False, "reason": str(exc)}
    os.replace(staging, path)
    return {"applied": True, **facts}


def export_embedder(
    source: str,
    out: Path,
    name: str | None = None,
    opset: int = 17,
    *,
    optimize: bool = True,
    quantize: str | None = None,
    min_cosine: float = MIN_INT8_COSINE,
) -> dict[str, Any]:
    """Export a Hugging Face encoder to ONNX with pooling inside the graph.

    Two outputs: `sentence_embedding` (B x D, what /embed reads; ONNX Runtime copies out only the outputs asked
    for) and `token_embeddings` (B x L x D, the last hidden state TEI's /embed_all returns). `optimize` applies
    ONNX Runtime's transformer fusions to the fp32 graph where they apply (fuse_in_place; faster on CPU, fp32
    and int8 alike: docs/benchmarks.md); `quantize="int8"` then writes the dynamically quantised model as the
    one served, checked against that fp32 graph on a fixed sample of texts. The fp32 intermediate is not kept:
    the directory holds what is served.
    """
    if quantize not in (None, "int8"):
        raise ModelError(f"--quantize {quantize!r}: only int8 is supported")
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    src = resolve_source(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src))
        # The fusion recognises attention only in its eager form (SDPA traces to a pattern it does not know).
        extra = {"attn_implementation": "eager"} if optimize else {}
        model = AutoModel.from_pretrained(str(src), **extra).eval()
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
    feeds = {n: sample[n].numpy().astype(np.int64) for n in input_names}

    def check(path: Path, what: str) -> tuple[float, float]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run([POOLED, TOKENS], feeds)
        diffs = tuple(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
        if max(diffs) > 1e-4:
            raise ModelError(f"{what} of {src} does not match torch (max abs diff {max(diffs):.2e})")
        return diffs[0], diffs[1]

    staged = [tmp]
    try:
        max_diff, tokens_diff = check(tmp, "ONNX export")
        transforms: dict[str, Any] = {"graph_fusion": None, "quantization": None}
        if optimize:
            staged.append(out / (ONNX_FILE + ".fused.tmp"))
            transforms["graph_fusion"] = fuse_in_place(tmp, staged[-1], model.config, check)
        if quantize:
            int8 = out / (ONNX_FILE + ".int8.tmp")
            staged.append(int8)
            transforms |= quantize_int8(tmp, int8)
            texts = tokenizer(
                list(SAMPLE_TEXTS), padding=True, truncation=True, max_length=max_length, return_tensors="np"
            )
            transforms["check_vs_fp32"] = agreement(
                tmp, int8, {n: texts[n].astype(np.int64) for n in input_names}, POOLED
            )
            if transforms["check_vs_fp32"]["min_cosine"] < min_cosine:
                raise ModelError(f"int8 model of {src} strays from fp32: {transforms['check_vs_fp32']} < {min_cosine}")
            os.replace(int8, out / ONNX_FILE)
        else:
            os.replace(tmp, out / ONNX_FILE)
    finally:
        for path in staged:
            path.unlink(missing_ok=True)
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
        "precision": quantize or "fp32",
        "export_max_abs_diff": max_diff,  # of the pooled output; the per-token one is usually a little larger
        "export_max_abs_diff_tokens": tokens_diff,
        **transforms,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_manifest(out, manifest)
    log.info("exported embedder", extra={"fields": {"source": str(source), "out": str(out), "max_abs_diff": max_diff}})
    return manifest
