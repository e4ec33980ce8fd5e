"""The cross-encoder on torch: FlagEmbedding's model, fed by ml-api's batcher (the backend for a checkpoint).

torch, transformers and FlagEmbedding are imported when a `Reranker` is built, never at import, so the slim
variant (no torch) can import every serving module.
"""

from __future__ import annotations

from pathlib import Path

from ml_api.device import DevicePlan
from ml_api.errors import ModelError
from ml_api.registry import read_manifest
from ml_api.reranking import CrossEncoder, Pair, PairTokenizer, positions_limit
from ml_api.session import is_oom


class Reranker(CrossEncoder):
    """FlagEmbedding's model on torch (fp16 on CUDA): the backend for a Hugging Face checkpoint."""

    backend = "flagembedding"

    def __init__(self, path: Path, plan: DevicePlan, max_length: int = 512) -> None:
        import torch
        import transformers
        from FlagEmbedding import FlagReranker

        transformers.utils.logging.disable_progress_bar()  # no tqdm bars in JSON logs

        manifest = read_manifest(path) or {}
        self.manifest = manifest
        self.path = path
        self.name = manifest.get("name") or path.name
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
        self.providers = [f"torch-{plan.device}"]
        model = self.flag.model
        if self.fp16:
            model = model.half()
        self.model = model.to("cuda:0" if plan.device == "cuda" else "cpu").eval()
        hf_tok = self.flag.tokenizer
        if not getattr(hf_tok, "is_fast", False):
            raise ModelError(f"{path} has no fast tokenizer (tokenizer.json)")
        self.pairs = PairTokenizer(
            hf_tok.backend_tokenizer,
            positions_limit(self.model.config.to_dict(), max_length),
            int(hf_tok.pad_token_id or 0),
            "token_type_ids" in hf_tok.model_input_names,
        )

    def forward(self, batch: list[Pair]) -> list[float]:
        torch = self._torch
        device = self.model.device
        inputs = {k: torch.from_numpy(v).to(device) for k, v in self.pairs.feeds(batch).items()}
        with torch.inference_mode():
            logits = self.model(**inputs, return_dict=True).logits.view(-1).float()
        return logits.cpu().numpy().tolist()

    def is_oom(self, exc: BaseException) -> bool:
        if isinstance(exc, self._torch.cuda.OutOfMemoryError):
            self._torch.cuda.empty_cache()
            return True
        return is_oom(exc)
