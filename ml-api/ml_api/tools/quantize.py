"""Graph transforms on an exported ONNX model: transformer fusions and dynamic int8 quantisation.

Both are ONNX Runtime's own well-kept tooling, so the result runs on the same providers the service uses:

- Fusion (onnxruntime.transformers.optimizer): attention, LayerNorm + residual, embedding + LayerNorm and
  bias + GELU each become one contrib op. ONNX Runtime's session-level ORT_ENABLE_ALL (which the service
  already sets) fuses only GELU and some MatMuls of a BERT export; attention stays ~50 ops per layer. The
  optimizer only recognises the attention pattern of an export traced with eager attention (export.py).
- Dynamic int8 (onnxruntime.quantization.quantize_dynamic): weights stored as int8 with one scale per output
  channel (far more accurate on small models than one per tensor), activations quantised on the fly at each
  MatMul. No calibration data; ONNX Runtime's recipe for CPUs (for GPUs it points to fp16 or static QDQ).

Each step returns the facts the manifest records; `agreement` is the numerical check against fp32.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml_api.errors import ModelError

QUANTIZATION = "int8-dynamic-per-channel"
# MatMul and Attention hold the layer weights; Gather (or EmbedLayerNormalization once fused) the embedding
# tables, about half of MiniLM's bytes. Quantising those costs no measurable accuracy and quarters the file.
QUANTIZED_OPS = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization")

# The fixed sample every check runs on: queries, sentences, a paragraph, and one past any max_length, so the
# check covers padding (one batch of mixed lengths) and truncation as the service meets them.
_PARAGRAPH = (
    "Dynamic quantisation stores the weights of every matrix multiplication as eight-bit integers with one "
    "scale per output channel and quantises the activations on the fly, which keeps small encoders close to "
    "their full-precision outputs while cutting the file to a quarter and speeding up inference on CPUs."
)
SAMPLE_TEXTS = (
    "hi",
    "what is dynamic quantization?",
    "vitamin D deficiency and bone density",
    "How do transformer encoders produce sentence embeddings?",
    "The quick brown fox jumps over the lazy dog.",
    "Aspirin reduces the risk of myocardial infarction in patients with prior cardiovascular events.",
    "Numbers like 3.14159, dates like 2024-05-01 and codes like HTTP/1.1 404 tokenise into many pieces.",
    "Ce texte est en français, pour voir ce que devient un vocabulaire anglais.",
    "CRISPR-Cas9 gene editing corrected the mutation in 72% of treated cells (n = 1,024; p < 0.001).",
    _PARAGRAPH,
    " ".join([_PARAGRAPH] * 2),
    " ".join([_PARAGRAPH] * 8),  # past 512 tokens: truncated
)


def fuse_transformer(
    src: Path, dst: Path, num_heads: int, hidden_size: int, model_type: str = "bert"
) -> dict[str, Any]:
    """Write `src` with ONNX Runtime's transformer fusions applied to `dst`; the facts for the manifest.

    opt_level=0 runs only the optimizer's pattern fusions, so the file holds portable contrib ops and no
    hardware-specific rewrites; the session applies its own ORT_ENABLE_ALL on top at load time.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    try:
        model = optimize_model(
            str(src), model_type=model_type, num_heads=num_heads, hidden_size=hidden_size, opt_level=0
        )
        fused = {op: n for op, n in model.get_fused_operator_statistics().items() if n}
        tmp = dst.with_name(dst.name + ".tmp")
        model.save_model_to_file(str(tmp))
    except Exception as exc:
        raise ModelError(f"cannot apply transformer fusions to {src}: {exc}") from exc
    os.replace(tmp, dst)
    return {"tool": "onnxruntime.transformers.optimizer", "model_type": model_type, "fused_ops": fused}


def quantize_int8(src: Path, dst: Path) -> dict[str, Any]:
    """Write an int8 (QInt8 weights, per-channel, dynamic) copy of the ONNX model `src` to `dst`.

    Returns the facts a manifest records about it. Written to a temporary name first, so a failure never leaves
    a half-written model where the service would load it.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not src.is_file():
        raise ModelError(f"no ONNX model at {src}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    try:
        quantize_dynamic(
            src,
            tmp,
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS),
            # Only weights (constant B) are quantised; a fused graph's contrib ops defeat ONNX shape inference,
            # so tensors of unknown type are taken as the float32 they are.
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"cannot quantise {src}: {exc}") from exc
    os.replace(tmp, dst)
    return {
        "quantization": QUANTIZATION,
        "quantization_tool": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "per_channel": True,
        "quantized_ops": list(QUANTIZED_OPS),
        "size_bytes": dst.stat().st_size,
        "source_size_bytes": src.stat().st_size,
    }


def run_model(path: Path, feeds: Mapping[str, np.ndarray], output: str) -> np.ndarray:
    """One output of a model on CPU with the service's session optimisation level."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run([output], dict(feeds))[0], dtype=np.float32)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two B x D matrices."""
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return np.asarray((a * b).sum(axis=1) / norms)


def agreement(reference: Path, candidate: Path, feeds: Mapping[str, np.ndarray], output: str) -> dict[str, Any]:
    """Min and mean cosine of `candidate`'s output against `reference`'s on the same feeds."""
    cos = cosines(run_model(reference, feeds, output), run_model(candidate, feeds, output))
    return {
        "texts": int(cos.shape[0]),
        "min_cosine": round(float(cos.min()), 5),
        "mean_cosine": round(float(cos.mean()), 5),
    }
