"""The cross-encoder's shared half: FlagReranker's tokenisation and the base both scoring backends extend.

FlagReranker.compute_score batches only within one call; to batch across clients we reproduce its
tokenisation (query cut to 3/4 of max_length, passage cut, pair cut 'only_second') with the fast
tokenizer (`PairTokenizer`) and call the model directly. Two backends extend `CrossEncoder`, so their scores
can differ only in the forward pass: `ml_api.torch_reranker.Reranker` (FlagEmbedding's model on torch) and
`ml_api.onnx_reranker.OnnxReranker` (a directory made by `ml-api models add-reranker --onnx`). Neither is
imported here; `ml_api.loading` picks one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from ml_api.errors import InputTooLong
from ml_api.registry import dtype
from ml_api.session import is_oom, pad_batch
from ml_api.truncation import compactor, encode_all

log = logging.getLogger("ml_api.reranking")


@dataclass(slots=True)
class Pair:
    input_ids: np.ndarray
    token_type_ids: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logits to 0..1 relevance, as FlagReranker's normalize=True does."""
    return 1.0 / (1.0 + np.exp(-x))


def positions_limit(config: dict, max_length: int) -> int:
    """The longest input the checkpoint's position table allows (RoBERTa's start after the padding index)."""
    positions = int(config.get("max_position_embeddings") or max_length)
    if config.get("model_type", "") in ("roberta", "xlm-roberta"):
        positions -= 2
    return min(max_length, positions)


class PairTokenizer:
    """compute_score's pairs from the fast tokenizer, and the padded arrays a forward pass takes."""

    def __init__(self, base: Tokenizer, max_length: int, pad_id: int, uses_token_types: bool) -> None:
        self.max_length = max_length
        self.query_max_length = max_length * 3 // 4
        self.pad_id = pad_id
        self.uses_token_types = uses_token_types
        self._query_tok = self._clone(base, self.query_max_length)
        self._text_tok = self._clone(base, self.max_length)
        self._pair_tok = self._clone(base, self.max_length, "only_second")
        self._raw_tok = self._clone(base, None)
        self._compact = compactor(self._raw_tok)

    @staticmethod
    def _clone(base: Tokenizer, max_length: int | None, strategy: str = "longest_first") -> Tokenizer:
        tok = Tokenizer.from_str(base.to_str())
        tok.no_padding()
        if max_length is None:
            tok.no_truncation()
        else:
            tok.enable_truncation(max_length, strategy=strategy)
        return tok

    def tokenize(
        self, query: str, texts: list[str], truncate: bool = True, max_doc_tokens: int | None = None
    ) -> list[Pair]:
        """Pairs as FlagReranker builds them; long texts are read only as far as truncation needs.

        `max_doc_tokens` first cuts each text alone (not the query) to its first that many tokens, as Cohere's
        `max_tokens_per_doc` does; the pair is then cut to the model's length as usual.
        """
        raw, limit = self._raw_tok, self.max_length
        doc_limit = limit if max_doc_tokens is None else min(limit, max_doc_tokens)

        def encode(final: Tokenizer, items: list[str], most: int) -> list[tuple[Encoding, bool]]:
            return encode_all(raw, final, items, most, add_special_tokens=False, compact=self._compact)

        def documents(final: Tokenizer) -> list[tuple[Encoding, bool]]:
            """Read only as far as `doc_limit`; a capped text is then known in full (its cut is exact)."""
            encoded = encode(final, texts, doc_limit)
            if doc_limit == limit:
                return encoded
            for p, _ in encoded:
                p.truncate(doc_limit)
            return [(p, True) for p, _ in encoded]

        if truncate:
            [(q, _)] = encode(self._query_tok, [query], self.query_max_length)
            passages = documents(self._text_tok)
            encodings = [self._pair_tok.post_process(q, p, add_special_tokens=True) for p, _ in passages]
        else:
            [(q, q_whole)] = encode(raw, [query], limit)
            encodings = []
            for i, (p, whole) in enumerate(documents(raw)):
                enc = raw.post_process(q, p, add_special_tokens=True)
                if not (q_whole and whole) or len(enc.ids) > limit:
                    count = f"{len(enc.ids)} tokens, more than" if q_whole and whole else "more tokens than"
                    raise InputTooLong(f"query + text {i} has {count} the model's {limit}; send truncate=true")
                encodings.append(enc)
        return [Pair(np.asarray(e.ids, dtype=np.int64), np.asarray(e.type_ids, dtype=np.int64)) for e in encodings]

    def feeds(self, batch: list[Pair]) -> dict[str, np.ndarray]:
        """Right-padded int64 arrays by input name; token_type_ids only for models that take them."""
        ids, mask = pad_batch([p.input_ids for p in batch], self.pad_id)
        arrays = {"input_ids": ids, "attention_mask": mask}
        if self.uses_token_types:
            arrays["token_type_ids"] = pad_batch([p.token_type_ids for p in batch], 0)[0]
        return arrays


class CrossEncoder:
    """What the engine and the batcher use of a reranker, whichever runtime scores the pairs."""

    backend: str  # "flagembedding" or "onnx", reported by /info
    name: str
    path: Path
    device: str
    fp16: bool
    pairs: PairTokenizer

    @property
    def max_length(self) -> int:
        return self.pairs.max_length

    def tokenize(
        self, query: str, texts: list[str], truncate: bool = True, max_doc_tokens: int | None = None
    ) -> list[Pair]:
        return self.pairs.tokenize(query, texts, truncate, max_doc_tokens)

    providers: list[str]
    manifest: dict

    def forward(self, batch: list[Pair]) -> list[float]:
        """Raw logits, one per pair."""
        raise NotImplementedError

    def describe(self) -> dict:
        """/info's and /v1/models' facts about the served cross-encoder."""
        return {
            "path": str(self.path),
            "source_name": self.name,
            "max_length": self.max_length,
            "dtype": dtype(self.manifest, self.fp16),
            "quantization": self.manifest.get("quantization"),
            "backend": self.backend,
            "device": self.device,
            "providers": self.providers,
            "fp16": self.fp16,
        }

    def is_oom(self, exc: BaseException) -> bool:
        return is_oom(exc)

    def score(self, pairs: list[tuple[str, str]], batch_size: int = 32) -> np.ndarray:
        """Logits of (query, passage) pairs in one call, longest first as compute_score batches them.

        In-process scoring without the batcher: the export check and the benchmark compare it with
        compute_score on the same pairs.
        """
        items = [pair for query, text in pairs for pair in self.tokenize(query, [text])]
        order = sorted(range(len(items)), key=lambda i: -len(items[i].input_ids))
        logits = np.empty(len(items), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            logits[chunk] = self.forward([items[i] for i in chunk])
        return logits
