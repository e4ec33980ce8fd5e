"""Embeddings over HTTP: ml-api's TEI-style /embed, or any OpenAI-compatible /embeddings endpoint.

The embedder's identity (provider, model, dimension) is resolved once from the upstream itself, so a
collection can record what it was indexed with and refuse a query embedded by something else. The rules on
that identity (which store space it indexes into, whether a collection accepts it) live here too: ingestion
and retrieval both apply them, and neither owns them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rag_backend.core.config import Settings
from rag_backend.errors import Conflict, DomainError, InvalidInput, UpstreamError
from rag_backend.upstream import Upstream, limits_from_info, served_models, unknown_model

SERVED_TTL_S = 30.0  # ml-api's served models are read again after this long (a restart may change them)


@dataclass(frozen=True, slots=True)
class EmbedIdentity:
    provider: str
    model: str
    dim: int

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.model}:{self.dim}"


def space_for(identity: EmbedIdentity) -> str:
    """One store space per embedding model: collections of the same model share it (tenant-indexed)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", identity.model).strip("-").lower()[:32] or "model"
    short = hashlib.sha256(identity.key.encode()).hexdigest()[:8]
    return f"chunks_{slug}_{identity.dim}_{short}"


def check_identity(collection: str, recorded: str | None, current: EmbedIdentity) -> None:
    """Vectors of two models are not comparable: a collection keeps the model it was first indexed with."""
    if recorded and recorded != current.key:
        raise Conflict(
            f"collection '{collection}' was indexed with embedding model {recorded}, but this backend now embeds "
            f"with {current.key}; re-index it into a new collection or switch the embedding model back"
        )


async def bound_identity(embedder: Embedder, collection: str, embed_key: str) -> EmbedIdentity:
    """What a bound collection embeds with; its model no longer served is a Conflict of the collection."""
    if embed_key.split(":", 1)[0] != embedder.provider:  # indexed through another provider: not comparable at all
        check_identity(collection, embed_key, await embedder.identity())
    try:
        identity = await embedder.identity(model_of(embed_key))
    except InvalidInput as exc:
        raise Conflict(f"collection '{collection}' is bound to embedding model {embed_key}: {exc}") from None
    check_identity(collection, embed_key, identity)
    return identity


class Embedder(Protocol):
    """`model` names one of the upstream's embedders (None: its default); an unknown name is InvalidInput."""

    provider: str

    async def identity(self, model: str | None = None) -> EmbedIdentity: ...
    async def embed(
        self, texts: list[str], *, model: str | None = None, retry_read_timeout: bool = True
    ) -> np.ndarray: ...
    async def health(self) -> tuple[bool, str]: ...


def model_of(embed_key: str) -> str:
    """The model name inside a catalog `embed_key` (provider:model:dim; a model name may hold colons)."""
    return embed_key.split(":", 1)[-1].rsplit(":", 1)[0]


def _as_matrix(rows: Any, expected: int, source: str) -> np.ndarray:
    try:
        matrix = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise UpstreamError(f"{source} returned embeddings that are not a numeric matrix") from None
    if matrix.ndim != 2 or matrix.shape[0] != expected:
        raise UpstreamError(f"{source} returned {matrix.shape} for {expected} texts")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _decode_openai(reply: Any, expected: int, source: str) -> np.ndarray:
    """data[].embedding as float lists or base64 little-endian float32, ordered by index."""
    try:
        data = sorted(reply["data"], key=lambda d: d["index"])
        rows = [
            np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") if isinstance(d["embedding"], str)
            else d["embedding"]
            for d in data
        ]  # fmt: skip
    except (KeyError, TypeError, ValueError):
        raise UpstreamError(f"{source} reply has no usable data[].embedding") from None
    return _as_matrix(rows, expected, source)


class _IdentityOnce:
    """Resolves the identity once, concurrently-safe; a failed attempt is retried by the next caller."""

    def __init__(self) -> None:
        self._identity: EmbedIdentity | None = None
        self._lock = asyncio.Lock()

    async def identity(self, model: str | None = None) -> EmbedIdentity:
        if self._identity is None:
            async with self._lock:
                if self._identity is None:
                    self._identity = await self._resolve()
        return self._identity

    async def _resolve(self) -> EmbedIdentity:
        raise NotImplementedError


class MlApiEmbedder:
    """ml-api's embedders by served name, read from its /info and read again after SERVED_TTL_S (models come and
    go with its restarts); while /info cannot be read the last list serves."""

    provider = "ml-api"

    def __init__(self, upstream: Upstream, url: str, key: str | None) -> None:
        self.upstream, self.url, self.key = upstream, url.rstrip("/"), key
        self.max_texts: int | None = None  # the upstream's advertised texts per request, read with the models
        self._served: dict[str, int] | None = None  # name -> dimension, the default first
        self._read_at = -SERVED_TTL_S
        self._lock = asyncio.Lock()

    async def served(self, refresh: bool = False) -> dict[str, int]:
        """Served embedder names and their dimensions, the default first."""
        if self._served is None or refresh or time.monotonic() - self._read_at > SERVED_TTL_S:
            async with self._lock:
                if self._served is None or refresh or time.monotonic() - self._read_at > SERVED_TTL_S:
                    try:
                        self._served = await self._read()
                    except DomainError:
                        if self._served is None:
                            raise
                    self._read_at = time.monotonic()
        return self._served

    async def _read(self) -> dict[str, int]:
        info = await self.upstream.get_json("ml-api", f"{self.url}/info", self.key, timeout_s=10)
        limits = limits_from_info(info)
        self.max_texts = limits.max_texts if limits else None
        if models := served_models(info, "embedding"):
            return {name: int(m.get("dimension") or 0) or await self._measure(name) for name, m in models.items()}
        emb = info.get("embedding") if isinstance(info, dict) else None
        model = str((emb or {}).get("model") or (info.get("model_id") if isinstance(info, dict) else None) or "unknown")
        dim = (emb or {}).get("dimension")
        return {model: int(dim) if dim else await self._measure(model)}  # TEI's /info has no dimension

    async def _measure(self, model: str) -> int:
        return int((await self._embed(["dimension probe"], model, True)).shape[1])

    async def identity(self, model: str | None = None) -> EmbedIdentity:
        served = await self.served()
        if model and model not in served and time.monotonic() - self._read_at > 1.0:
            served = await self.served(refresh=True)  # a model ml-api has served since the last read
        name = model or next(iter(served))
        if name not in served:
            raise unknown_model("embedding", name, served)
        return EmbedIdentity(self.provider, name, served[name])

    async def embed(self, texts: list[str], *, model: str | None = None, retry_read_timeout: bool = True) -> np.ndarray:
        """Batches over the upstream's advertised MAX_CLIENT_BATCH_SIZE go as several requests, not a 413.

        `model` is sent as it is (callers resolve it with `identity`); None lets the upstream use its default."""
        step = self.max_texts or len(texts) or 1
        if len(texts) <= step:
            return await self._embed(texts, model, retry_read_timeout)
        parts = [await self._embed(texts[i : i + step], model, retry_read_timeout) for i in range(0, len(texts), step)]
        return np.vstack(parts)

    async def _embed(self, texts: list[str], model: str | None, retry_read_timeout: bool) -> np.ndarray:
        # OpenAI shape with base64 floats (ml-api and TEI both serve it): a tenth of the bytes of a JSON float
        # list and no float parsing on either side, which on a shared CPU box is time taken from the model.
        body: dict[str, Any] = {"input": texts, "encoding_format": "base64"}
        if model:
            body["model"] = model
        url = f"{self.url}/v1/embeddings"
        reply = await self.upstream.post_json("ml-api", url, body, self.key, retry_read_timeout=retry_read_timeout)
        return _decode_openai(reply, len(texts), "ml-api /v1/embeddings")

    async def health(self) -> tuple[bool, str]:
        return await ml_api_health(self.upstream, self.url, self.key)


class OpenAIEmbedder(_IdentityOnce):
    provider = "openai"

    def __init__(self, upstream: Upstream, base_url: str, key: str | None, model: str, dims: int | None) -> None:
        super().__init__()
        self.upstream, self.url, self.key, self.model, self.dims = upstream, base_url.rstrip("/"), key, model, dims

    async def _resolve(self) -> EmbedIdentity:
        dim = self.dims or int((await self.embed(["dimension probe"])).shape[1])
        return EmbedIdentity(self.provider, self.model, dim)

    def _check(self, model: str | None) -> None:
        if model and model != self.model:
            raise InvalidInput(f"unknown embedding model '{model}': the embeddings API is configured with {self.model}")

    async def identity(self, model: str | None = None) -> EmbedIdentity:
        self._check(model)
        return await super().identity()

    async def embed(self, texts: list[str], *, model: str | None = None, retry_read_timeout: bool = True) -> np.ndarray:
        self._check(model)
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.dims:
            body["dimensions"] = self.dims
        url = f"{self.url}/embeddings"
        reply = await self.upstream.post_json(
            "embeddings API", url, body, self.key, retry_read_timeout=retry_read_timeout
        )
        return _decode_openai(reply, len(texts), "embeddings API")

    async def health(self) -> tuple[bool, str]:
        try:
            await self.upstream.get_json("embeddings API", f"{self.url}/models", self.key, timeout_s=5)
        except Exception as exc:
            return False, str(exc)
        return True, f"{self.url} ({self.model})"


async def ml_api_health(upstream: Upstream, url: str, key: str | None) -> tuple[bool, str]:
    try:
        await upstream.get_json("ml-api", f"{url}/health", key, timeout_s=10)
    except Exception as exc:
        return False, str(exc)
    return True, url


def make_embedder(settings: Settings, upstream: Upstream) -> Embedder:
    if settings.embed_provider == "openai":
        return OpenAIEmbedder(
            upstream,
            settings.openai_embed_base_url,
            settings.openai_embed_api_key,
            settings.openai_embed_model,
            settings.openai_embed_dimensions,
        )
    return MlApiEmbedder(upstream, settings.embed_api_url, settings.upstream_key)
