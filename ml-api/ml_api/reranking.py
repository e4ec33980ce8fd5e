"""The cross-encoder: loaded by FlagEmbedding's FlagReranker, fed by our batcher.

FlagReranker.compute_score batches only within one call; to batch across clients we reproduce its
tokenisation (query cut to 3/4 of max_length, passage cut, pair cut 'only_second') with the fast
tokenizer and call its model directly. Scores match compute_score (tested).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from ml_api.device import DevicePlan
from ml_api.embedding import pad_batch
from ml_api.errors import InputTooLong, ModelError
from ml_api.registry import read_manifest
from ml_api.truncation import compactor, encode_all

log = logging.getLogger("ml_api.reranking")


@dataclass(slots=True)
class Pair:
    input_ids: np.ndarray
    token_type_ids: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logits to 0..1 relevance, as FlagReranker's normalize=True does."""
    return 1.0 / (1.0 + np.exp(-x))


class Reranker:
    def __init__(self, path: Path, plan: DevicePlan, max_length: int = 512) -> None:
        import torch
        import transformers
        from FlagEmbedding import FlagReranker

        transformers.utils.logging.disable_progress_bar()  # no tqdm bars in JSON logs

        manifest = read_manifest(path) or {}
        self.path = path
        self.name: str = manifest.get("name") or path.name
        self.device = plan.device
        self.fp16 = plan.rerank_fp16 and plan.device == "cuda"
        try:
            self.flag = FlagReranker(
                str(path),
                use_fp16=self.fp16,
                devices=["cuda:0"] if plan.device == "cuda" else "cpu",
                max_length=max_length,
                normalize=False,
            )
        except Exception as exc:
            raise ModelError(f"FlagReranker cannot load {path}: {exc}") from exc
        self._torch = torch
        model = self.flag.model
        if self.fp16:
            model = model.half()
        self.model = model.to("cuda:0" if plan.device == "cuda" else "cpu").eval()
        hf_tok = self.flag.tokenizer
        if not getattr(hf_tok, "is_fast", False):
            raise ModelError(f"{path} has no fast tokenizer (tokenizer.json)")
        positions = int(getattr(self.model.config, "max_position_embeddings", max_length))
        if getattr(self.model.config, "model_type", "") in ("roberta", "xlm-roberta"):
            positions -= 2
        self.max_length = min(max_length, positions)
        self.query_max_length = self.max_length * 3 // 4
        self._uses_token_types = "token_type_ids" in hf_tok.model_input_names
        self.pad_id = int(hf_tok.pad_token_id or 0)
        base: Tokenizer = hf_tok.backend_tokenizer
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

    def forward(self, batch: list[Pair]) -> list[float]:
        """Raw logits, one per pair."""
        torch = self._torch
        ids, mask = pad_batch([p.input_ids for p in batch], self.pad_id)
        device = self.model.device
        inputs = {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}
        if self._uses_token_types:
            types, _ = pad_batch([p.token_type_ids for p in batch], 0)
            inputs["token_type_ids"] = torch.from_numpy(types).to(device)
        with torch.inference_mode():
            logits = self.model(**inputs, return_dict=True).logits.view(-1).float()
        return logits.cpu().numpy().tolist()

    def is_oom(self, exc: BaseException) -> bool:
        if isinstance(exc, self._torch.cuda.OutOfMemoryError):
            self._torch.cuda.empty_cache()
            return True
        return "out of memory" in str(exc).lower()
