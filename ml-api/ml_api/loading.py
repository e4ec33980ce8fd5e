"""Each model kind behind one small interface, and the one place that picks the class serving a directory.

The engine and its batchers know a model only through `EmbeddingModel` or `RerankModel`; which runtime scores
it (ONNX Runtime, or FlagEmbedding on torch) is decided here from the directory's manifest. Nothing here
exports or downloads: a directory must already be prepared (`ml-api models ...`, or `ml-api serve`, which
exports a never-exported checkpoint before the runtime starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml_api.device import DevicePlan
from ml_api.embedding import Direction, Embedder
from ml_api.errors import ModelError
from ml_api.registry import ONNX_FILE, read_manifest, resolve_embedder, resolve_reranker
from ml_api.reranking import Pair
from ml_api.session import DEFAULT_THREADS, Threads


class EmbeddingModel(Protocol):
    """What the engine uses of an embedder: token rows in, one pooled vector (and per-token rows) out."""

    name: str
    path: Path
    dimension: int
    max_length: int
    pooling: str
    device: str
    has_token_embeddings: bool

    def tokenize(self, texts: list[str], truncate: bool, direction: Direction) -> list[np.ndarray]: ...
    def from_ids(self, rows: list[list[int]], truncate: bool, direction: Direction) -> list[np.ndarray]: ...
    def tokens(self, texts: list[str], add_special_tokens: bool) -> list[list[dict]]: ...
    def decode(self, rows: list[list[int]], skip_special_tokens: bool) -> list[str]: ...
    def forward_rows(self, batch: list[np.ndarray]) -> list[np.ndarray]: ...
    def forward_tokens(self, batch: list[np.ndarray]) -> list[np.ndarray]: ...
    def describe(self) -> dict[str, Any]: ...


class RerankModel(Protocol):
    """What the engine uses of a cross-encoder: (query, texts) to pairs, pairs to one logit each."""

    name: str
    path: Path
    max_length: int
    device: str

    def tokenize(self, query: str, texts: list[str], truncate: bool, max_doc_tokens: int | None) -> list[Pair]: ...
    def forward(self, batch: list[Pair]) -> list[float]: ...
    def is_oom(self, exc: BaseException) -> bool: ...
    def describe(self) -> dict[str, Any]: ...


def load_embedder(path: Path, plan: DevicePlan, threads: Threads = DEFAULT_THREADS) -> EmbeddingModel:
    """Every embedder is an ONNX export today; a second runtime would be chosen here, as for rerankers."""
    return Embedder(path, plan, threads)


def load_reranker(
    path: Path, plan: DevicePlan, max_length: int = 512, threads: Threads = DEFAULT_THREADS
) -> RerankModel:
    """ONNX Runtime for a directory whose manifest says format "onnx", FlagReranker for any other checkpoint."""
    if (read_manifest(path) or {}).get("format") == "onnx":
        from ml_api.onnx_reranker import OnnxReranker

        return OnnxReranker(path, plan, max_length, threads)
    from ml_api.torch_reranker import Reranker  # torch itself loads only when one is built

    return Reranker(path, plan, max_length)


def resolve(kind: str, spec: str, models_dir: Path) -> Path:
    """The directory a spec serves, without loading it (the memory check sizes it first)."""
    return resolve_embedder(spec, models_dir) if kind == "embedding" else resolve_reranker(spec)


def weight_bytes(path: Path) -> int:
    """The served weights' size on disk: the ONNX file (and its external data), else the checkpoint's tensors.

    A loaded model takes about this much memory, plus activations that MAX_BATCH_TOKENS bounds.
    """
    manifest = read_manifest(path) or {}
    if manifest.get("format") == "onnx":
        files = [path / manifest.get("file", ONNX_FILE)]
        files += [f for f in path.iterdir() if f.suffix == ".data" or f.name.endswith(".onnx_data")]
    else:
        files = [f for f in path.rglob("*") if f.suffix in (".safetensors", ".bin", ".pt")]
        if any(f.suffix == ".safetensors" for f in files):  # one set of weights, as transformers loads them
            files = [f for f in files if f.suffix == ".safetensors"]
    return sum(f.stat().st_size for f in files if f.is_file())


def check_fits(sizes: dict[str, int], budget_mb: float, what: str) -> None:
    """Refuse to start when the models' weights alone pass the budget, naming each model's share."""
    need = sum(sizes.values()) / 2**20
    if need > budget_mb:
        parts = ", ".join(f"{name} {size / 2**20:.0f} MB" for name, size in sizes.items())
        raise ModelError(
            f"the models need about {need:.0f} MB ({parts}), more than {what} ({budget_mb:.0f} MB); serve fewer "
            "models, int8 exports (`ml-api models export ... --quantize int8`), or a larger device"
        )
