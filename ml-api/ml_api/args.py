"""What the engine needs to start, frozen and apart from environment parsing (Infinity's `EngineArgs`).

`Settings` reads the environment and also holds HTTP concerns (host, port, API key, body limit); the engine
gets only this small value, so it can be built in a test or a benchmark without touching the environment,
and nothing can change it after start.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from ml_api.core.config import Settings


@dataclass(frozen=True, slots=True)
class EngineArgs:
    embed_model: str
    rerank_model: str
    models_dir: Path = Path("models")
    embed_model_name: str | None = None  # reported in /info and the OpenAI/Cohere "model" field
    rerank_model_name: str | None = None
    device: Literal["auto", "cuda", "cpu"] = "auto"
    rerank_fp16: bool = True
    rerank_max_length: int = 512
    ort_intra_op_threads: int = 0
    max_batch_tokens: int | None = None  # None: by device (16384 on CUDA, 4096 on CPU)
    max_batch_size: int = 256
    sort_window_tokens: int = 65536
    padding_split_tokens: int = 1024
    max_concurrent_requests: int = 512
    max_client_batch_size: int = 512
    health_timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineArgs:
        """The engine's share of the settings; the names match, only MODELS_DIR becomes a Path."""
        values = {f.name: getattr(settings, f.name) for f in fields(cls)}
        values["models_dir"] = Path(settings.models_dir)
        return cls(**values)
