"""Reranking over HTTP with ml-api's (TEI's) /rerank: the cross-encoder runs there, never here."""

from __future__ import annotations

from rag_backend.embedding import ml_api_health
from rag_backend.errors import UpstreamError
from rag_backend.upstream import Upstream


class Reranker:
    def __init__(self, upstream: Upstream, url: str, key: str | None) -> None:
        self.upstream, self.url, self.key = upstream, url.rstrip("/"), key

    async def scores(self, query: str, texts: list[str]) -> list[float]:
        """Relevance in [0, 1] (sigmoid of the cross-encoder logit), in the order of texts."""
        if not texts:
            return []
        body = {"query": query, "texts": texts, "truncate": True}
        reply = await self.upstream.post_json("ml-api", f"{self.url}/rerank", body, self.key)
        out = [0.0] * len(texts)
        try:
            for item in reply:
                out[int(item["index"])] = float(item["score"])
        except (KeyError, TypeError, ValueError, IndexError):
            raise UpstreamError("ml-api /rerank reply is not a list of {index, score}") from None
        return out

    async def health(self) -> tuple[bool, str]:
        return await ml_api_health(self.upstream, self.url, self.key)
