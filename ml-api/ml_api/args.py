"""What the engine needs to start, frozen and apart from environment parsing (Infinity's `EngineArgs`).

`Settings` reads the environment and also holds HTTP concerns (host, port, API key, body limit); the engine
gets only this small value, so it can be built in a test or a benchmark without touching the environment,
and nothing can change it after start. EMBED_MODELS / RERANK_MODELS (`name=path` pairs) serve several models of a
kind; EMBED_MODEL / RERANK_MODEL (with *_MODEL_NAME) are the one-model case of the same list.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from ml_api.core.config import Settings
from ml_api.errors import ModelError

Served = tuple[tuple[str | None, str], ...]  # (name or None: the manifest's, spec), the default first


def parse_models(value: str, setting: str) -> Served:
    """`name=path,name=path` (EMBED_MODELS, RERANK_MODELS) in order; the first is the default."""
    served: list[tuple[str | None, str]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        name, sep, spec = (s.strip() for s in part.partition("="))
        if not sep or not name or not spec:
            raise ModelError(
                f"{setting}: {part!r} is not a name=path pair (e.g. {setting}=fast=models/a,exact=models/b)"
            )
        if name in {n for n, _ in served}:
            raise ModelError(f"{setting}: the name {name!r} is given twice")
        served.append((name, spec))
    if not served:
        raise ModelError(f"{setting} is set but names no model")
    return tuple(served)


@dataclass(frozen=True, slots=True)
class EngineArgs:
    embed_models: Served
    rerank_models: Served
    models_dir: Path = Path("models")
    device: Literal["auto", "cuda", "cpu"] = "auto"
    rerank_fp16: bool = True
    rerank_max_length: int = 512
    ort_intra_op_threads: int = 0
    ort_allow_spinning: bool = False
    max_batch_tokens: int | None = None  # None: by device (16384 on CUDA, 4096 on CPU)
    max_batch_size: int = 256
    sort_window_tokens: int = 65536
    padding_split_tokens: int = 1024
    max_concurrent_requests: int = 512
    max_client_batch_size: int = 512
    health_timeout_s: float = 30.0
    tokenization_workers: int = 0  # 0: one per core
    models_max_memory_mb: float | None = None  # None: the device's free memory

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineArgs:
        """The engine's share of the settings; the names match, only MODELS_DIR becomes a Path."""
        own = {"embed_models", "rerank_models", "models_dir"}
        values = {f.name: getattr(settings, f.name) for f in fields(cls) if f.name not in own}
        return cls(
            embed_models=parse_models(settings.embed_models, "EMBED_MODELS")
            if settings.embed_models
            else ((settings.embed_model_name, settings.embed_model),),
            rerank_models=parse_models(settings.rerank_models, "RERANK_MODELS")
            if settings.rerank_models
            else ((settings.rerank_model_name, settings.rerank_model),),
            models_dir=Path(settings.models_dir),
            **values,
        )
