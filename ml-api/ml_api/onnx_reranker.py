"""The cross-encoder on ONNX Runtime: FlagReranker's tokenisation and scores without torch or FlagEmbedding.

Serves a directory written by `ml-api models add-reranker SRC --onnx` (manifest format "onnx"), so the slim
image can rerank with onnxruntime and tokenizers alone. On CUDA an fp32 graph is converted to fp16 when it
is loaded (RERANK_FP16, as FlagReranker's `use_fp16`), so one exported directory serves CPU and GPU alike;
an int8 graph is a CPU format and runs as it is.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ml_api.device import DevicePlan
from ml_api.errors import ModelError
from ml_api.registry import ONNX_FILE, read_manifest
from ml_api.reranking import CrossEncoder, Pair, PairTokenizer
from ml_api.session import DEFAULT_THREADS, Threads, open_session

log = logging.getLogger("ml_api.onnx_reranker")

LOGITS = "logits"  # the graph's output: (batch, 1) raw scores, what compute_score(normalize=False) returns


def to_fp16(file: Path) -> bytes:
    """The graph with fp16 weights and compute but float32 inputs and outputs (ONNX Runtime's own converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    return convert_float_to_float16(onnx.load(str(file)), keep_io_types=True).SerializeToString()


class OnnxReranker(CrossEncoder):
    backend = "onnx"

    def __init__(self, path: Path, plan: DevicePlan, max_length: int = 512, threads: Threads = DEFAULT_THREADS) -> None:
        manifest = read_manifest(path)
        if not manifest or manifest.get("kind") != "reranker" or manifest.get("format") != "onnx":
            raise ModelError(f"{path} is not an ONNX reranker made by `ml-api models add-reranker --onnx`")
        self.path = path
        self.manifest = manifest
        self.name = manifest.get("name") or path.name
        self.precision: str = manifest.get("precision", "fp32")
        file = path / manifest.get("file", ONNX_FILE)
        if not file.is_file():
            raise ModelError(f"{path} has a manifest but no {file.name}; re-run `ml-api models add-reranker --onnx`")
        tokenizer_file = path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelError(f"{path} has no tokenizer.json")
        self._inputs: list[str] = list(manifest["inputs"])
        self.pairs = PairTokenizer(
            Tokenizer.from_file(str(tokenizer_file)),
            min(max_length, int(manifest["max_length"])),
            int(manifest.get("pad_id", 0)),
            "token_type_ids" in self._inputs,
        )
        self.fp16 = plan.device == "cuda" and plan.rerank_fp16 and self.precision == "fp32"
        model = to_fp16(file) if self.fp16 else None
        self.session = open_session(file, plan, threads, model)
        self.providers: list[str] = self.session.get_providers()
        self.device = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        log.info(
            "ONNX reranker loaded",
            extra={"fields": {"path": str(path), "precision": "fp16" if self.fp16 else self.precision}},
        )

    def forward(self, batch: list[Pair]) -> list[float]:
        feeds = self.pairs.feeds(batch)
        logits = self.session.run([LOGITS], {name: feeds[name] for name in self._inputs})[0]
        return np.asarray(logits, dtype=np.float32).reshape(-1).tolist()
