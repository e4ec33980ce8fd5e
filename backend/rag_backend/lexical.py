"""Sparse lexical vectors, BM25-style, with Qdrant's own BM25 tokenizer (qdrant-edge-py, Rust, no torch).

Documents get saturated term frequencies (k, b, avg_len); queries get 1.0 per unique term. The IDF
half lives in the store: the `bm25` sparse vector is created with Qdrant's IDF modifier, so IDF
always reflects the collection as it is now, with no corpus statistics to keep in sync here.
"""

from __future__ import annotations

from qdrant_edge import Bm25, Bm25Config

Sparse = tuple[list[int], list[float]]


class Lexical:
    def __init__(self, language: str = "english", k: float = 1.2, b: float = 0.75, avg_len: float = 256.0) -> None:
        self._bm25 = Bm25(Bm25Config(k=k, b=b, avg_len=avg_len, language=language))

    def document(self, text: str) -> Sparse:
        vec = self._bm25.embed_document(text)
        return list(vec.indices), list(vec.values)

    def query(self, text: str) -> Sparse:
        vec = self._bm25.embed_query(text)
        return list(vec.indices), list(vec.values)
