"""Export a cross-encoder to ONNX for the torch-free reranker, checked against FlagReranker before it is kept.

The graph returns the classifier's logits, the numbers `FlagReranker.compute_score(normalize=False)` returns;
the service applies the sigmoid itself. The check scores a fixed set of (query, passage) pairs, short and
truncated ones, through the very class that will serve the directory (`OnnxReranker`, its tokenisation
included) and compares them with compute_score on the source checkpoint. fp32 must agree within a tolerance
or nothing is written; an int8 copy cannot be that close, so its error and rank agreement are recorded instead.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from itertools import combinations
from pathlib import Path
from typing import Any

from ml_api.device import DevicePlan
from ml_api.errors import ModelError
from ml_api.onnx_reranker import LOGITS, OnnxReranker
from ml_api.registry import MANIFEST, ONNX_FILE, resolve_source
from ml_api.reranking import positions_limit
from ml_api.tools.export import write_manifest

log = logging.getLogger("ml_api.tools.export_reranker")

FP32_TOLERANCE = 1e-3  # max |logit difference| an fp32 export may have against compute_score
INT8_RANK_FLOOR = 0.8  # below this share of same-order passage pairs, an int8 copy is broken, not just coarser
CPU = DevicePlan("cpu", ["CPUExecutionProvider"], False, "export check")

_LONG = " ".join(f"Giant pandas spend {n} hours a day eating bamboo shoots and leaves." for n in range(90))
CHECK_QUERIES = {
    "what do giant pandas eat?": [
        "The giant panda's diet is 99% bamboo.",
        "Paris is the capital and largest city of France.",
        "Pandas occasionally eat small rodents or carrion.",
        _LONG,  # past 512 tokens: cut 'only_second' as compute_score cuts it
        "hi",
    ],
    "how does aspirin reduce fever?": [
        "Aspirin inhibits cyclooxygenase, lowering prostaglandin synthesis in the hypothalamus.",
        "Fever is a temporary rise in body temperature.",
        "Der Eiffelturm ist ein 330 Meter hoher Eisenfachwerkturm in Paris.",
        "Aspirin was first synthesised by Felix Hoffmann at Bayer in 1897.",
        "🐼 パンダは竹を食べる。",
    ],
    "which vaccine platforms use messenger RNA? " * 40: [  # a query past 3/4 of max_length: cut to 384 tokens
        "mRNA vaccines deliver messenger RNA encoding an antigen inside lipid nanoparticles.",
        "Inactivated vaccines contain killed pathogens.",
        _LONG,
    ],
}
CHECK_PAIRS: list[tuple[str, str]] = [(q, p) for q, passages in CHECK_QUERIES.items() for p in passages]


def rank_agreement(reference: list[float], scores: list[float], pairs: list[tuple[str, str]]) -> float:
    """Share of same-query passage pairs that both score lists order the same way (1.0: identical rankings)."""
    same = total = 0
    for i, j in combinations(range(len(pairs)), 2):
        if pairs[i][0] != pairs[j][0]:
            continue
        total += 1
        same += (reference[i] - reference[j]) * (scores[i] - scores[j]) > 0
    return same / total if total else 1.0


def export_reranker(
    source: str,
    out: Path,
    name: str | None = None,
    quantize: str | None = None,
    max_length: int = 512,
    opset: int = 17,
    tolerance: float = FP32_TOLERANCE,
) -> dict[str, Any]:
    """Write model.onnx (logits out, dynamic batch and sequence), the tokenizer and a manifest with the checks."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if quantize not in (None, "int8"):
        raise ModelError(f"--quantize {quantize!r}: only int8 is supported")
    src = resolve_source(source)
    if src.resolve() == out.resolve():
        raise ModelError(f"--out {out} is the source checkpoint; export into another directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src))
        # Eager attention: ONNX Runtime's fusion recognises attention only in that form (as export.py does).
        model = AutoModelForSequenceClassification.from_pretrained(str(src), attn_implementation="eager").eval()
    except Exception as exc:
        raise ModelError(f"cannot load a cross-encoder from {src}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{src} has no fast tokenizer (tokenizer.json); the service needs one")
    if int(model.config.num_labels) != 1:
        raise ModelError(f"{src} has {model.config.num_labels} labels; a reranker scores each pair with one logit")
    max_length = positions_limit(model.config.to_dict(), max_length)
    inputs = ["input_ids", "attention_mask"] + (
        ["token_type_ids"] if "token_type_ids" in tokenizer.model_input_names else []
    )

    class Logits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):  # type: ignore[no-untyped-def]
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            return self.model(**kwargs).logits

    sample = tokenizer(
        ["what is panda?", "a query"],
        ["The giant panda is a bear.", "a longer passage so that padding appears"],
        padding=True,
        return_tensors="pt",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with torch.no_grad():
            torch.onnx.export(
                Logits(model).eval(),
                tuple(sample[n] for n in inputs),
                str(staging / ONNX_FILE),
                input_names=inputs,
                output_names=[LOGITS],
                dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in inputs}, LOGITS: {0: "batch"}},
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        tokenizer.save_pretrained(str(staging))
        manifest: dict[str, Any] = {
            "kind": "reranker",
            "name": name or out.name,
            "source": str(source),
            "format": "onnx",
            "file": ONNX_FILE,
            "precision": "fp32",
            "architecture": (model.config.architectures or ["?"])[0],
            "max_length": max_length,
            "inputs": inputs,
            "output": LOGITS,
            "pad_id": int(tokenizer.pad_token_id or 0),
            "opset": opset,
        }
        config = model.config
        del model
        unfused = staging / "model.unfused.onnx"
        shutil.copyfile(staging / ONNX_FILE, unfused)
        manifest["graph_fusion"] = _fuse(staging / ONNX_FILE, config)
        write_manifest(staging, manifest)
        try:
            manifest |= _check(src, staging, max_length, quantize, tolerance)
        except ModelError as exc:
            if not manifest["graph_fusion"]["applied"]:
                raise
            log.warning(
                "fused reranker graph off FlagReranker; keeping it unfused", extra={"fields": {"why": str(exc)}}
            )
            os.replace(unfused, staging / ONNX_FILE)
            manifest["graph_fusion"] = {"applied": False, "reason": str(exc)}
            write_manifest(staging, manifest)
            manifest |= _check(src, staging, max_length, quantize, tolerance)
        unfused.unlink(missing_ok=True)
        manifest["exported_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_manifest(staging, manifest)
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir(), key=lambda f: f.name == MANIFEST):  # the manifest last
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported reranker", extra={"fields": {"source": str(source), "out": str(out), **manifest["checks"]}})
    return manifest


def _fuse(file: Path, config: Any) -> dict[str, Any]:
    """ONNX Runtime's transformer fusions (attention, LayerNorm, GELU), as the embedder export applies them.

    Without them the graph computes attention op by op, and ONNX Runtime scored pairs at 0.55-0.66x
    FlagReranker's rate through the service (torch runs a fused attention); `_check` holds the fused graph to
    FlagReranker's scores like the plain one, and an architecture the optimizer does not know stays unfused.
    """
    from ml_api.tools.export import FUSABLE
    from ml_api.tools.quantize import fuse_transformer

    kind = str(getattr(config, "model_type", ""))
    if kind not in FUSABLE:
        return {"applied": False, "reason": f"model_type {kind!r} is not one of ONNX Runtime's BERT-family fusions"}
    fused = file.with_name("model.fused.onnx")
    try:
        facts = fuse_transformer(file, fused, int(config.num_attention_heads), int(config.hidden_size))
    except ModelError as exc:
        return {"applied": False, "reason": str(exc)}
    os.replace(fused, file)
    return {"applied": True, **facts}


def _check(src: Path, staging: Path, max_length: int, quantize: str | None, tolerance: float) -> dict[str, Any]:
    """Score CHECK_PAIRS with compute_score and with the exported graph; quantise after fp32 has passed."""
    import numpy as np
    from FlagEmbedding import FlagReranker

    flag = FlagReranker(str(src), use_fp16=False, devices="cpu", max_length=max_length, normalize=False)
    reference = np.asarray(flag.compute_score(CHECK_PAIRS, normalize=False), dtype=np.float64)
    del flag
    fp32 = OnnxReranker(staging, CPU, max_length).score(CHECK_PAIRS)
    fp32_diff = float(np.abs(fp32 - reference).max())
    if fp32_diff > tolerance:
        raise ModelError(f"ONNX export of {src} does not match FlagReranker: max |logit diff| {fp32_diff:.2e}")
    checks: dict[str, Any] = {
        "reference": "FlagReranker.compute_score, fp32 on CPU",
        "pairs": len(CHECK_PAIRS),
        "tolerance": tolerance,
        "fp32_max_abs_diff": fp32_diff,
        "max_abs_diff": fp32_diff,
        "rank_agreement": rank_agreement(reference.tolist(), fp32.tolist(), CHECK_PAIRS),
    }
    if quantize is None:
        return {"checks": checks}
    from ml_api.tools.quantize import quantize_int8

    fp32_file = staging / "model.fp32.onnx"
    os.replace(staging / ONNX_FILE, fp32_file)
    facts = quantize_int8(fp32_file, staging / ONNX_FILE)
    fp32_file.unlink()
    int8 = OnnxReranker(staging, CPU, max_length).score(CHECK_PAIRS)
    checks |= {
        "max_abs_diff": float(np.abs(int8 - reference).max()),
        "rank_agreement": rank_agreement(reference.tolist(), int8.tolist(), CHECK_PAIRS),
        "rank_floor": INT8_RANK_FLOOR,
    }
    if checks["rank_agreement"] < INT8_RANK_FLOOR:
        raise ModelError(f"int8 copy of {src} ranks unlike FlagReranker: agreement {checks['rank_agreement']:.2f}")
    return {"precision": "int8", "quantization": facts, "checks": checks}
