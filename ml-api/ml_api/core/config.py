"""The one settings object of the service; every field is an environment variable of the same name."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    host: str = "0.0.0.0"
    port: int = 8001

    # Models: a local directory prepared by `ml-api models ...`, or a Hugging Face id where the
    # machine has internet (the embedder is then exported to ONNX into MODELS_DIR first).
    models_dir: str = "models"
    embed_model: str = "models/all-MiniLM-L6-v2"
    rerank_model: str = "models/reranker"  # the slot `make models` fills (bge-reranker-base, or a fallback)
    embed_model_name: str | None = None  # name reported in /info and the OpenAI "model" field
    rerank_model_name: str | None = None
    # Several models of a kind in one process: `name=path,name=path`, the first the default; they replace
    # EMBED_MODEL / RERANK_MODEL (and their *_NAME). Requests pick one by its name in `model`.
    embed_models: str = ""
    rerank_models: str = ""
    models_max_memory_mb: float | None = Field(None, gt=0)  # empty: the device's free memory
    tokenization_workers: int = Field(0, ge=0)  # threads tokenising long inputs; 0 = one per core
    device: Literal["auto", "cuda", "cpu"] = "auto"
    rerank_fp16: bool = True  # only applies on CUDA
    rerank_max_length: int = Field(512, ge=8)
    ort_intra_op_threads: int = Field(0, ge=0)  # 0 = ONNX Runtime's default (physical cores)
    ort_allow_spinning: bool = False  # intra-op threads busy-wait between parallel sections (dedicated cores)

    # Batching: one queue per model, windows bounded by padded tokens.
    # Padded tokens per forward pass; empty = by device: 16384 on CUDA (TEI's default), 4096 on CPU, where
    # bigger batches add no parallelism, only cache misses (measured: make bench-ml).
    max_batch_tokens: int | None = Field(None, ge=64)
    max_batch_size: int = Field(256, ge=1)
    sort_window_tokens: int = Field(65536, ge=64)  # real tokens taken, length-sorted, per scheduling round
    padding_split_tokens: int = Field(1024, ge=0)
    max_concurrent_requests: int = Field(512, ge=1)
    max_client_batch_size: int = Field(512, ge=1)
    max_request_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    health_timeout_s: float = Field(30.0, gt=0)

    api_key: str | None = None
    cors_allow_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    log_json: bool = True
    graceful_shutdown_s: int = Field(30, ge=0)

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator(
        "api_key", "embed_model_name", "rerank_model_name", "max_batch_tokens", "models_max_memory_mb", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return value or None


@lru_cache
def get_settings() -> Settings:
    return Settings()
