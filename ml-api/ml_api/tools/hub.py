"""Fetch a cross-encoder checkpoint from the Hugging Face hub, telling "unreachable" apart from "refused".

`make models` falls back to the test cross-encoder only when the hub cannot be reached (no network, DNS, a
timeout, a 5xx, HF_HUB_OFFLINE). A hub that answers 401, 403 or 404 means a wrong id, a gated model or a
missing token: a fallback would hide that, so it is an error instead.
"""

from __future__ import annotations

from pathlib import Path

from ml_api.errors import ModelError

# What FlagReranker needs from a checkpoint: config, tokenizer files and one set of weights (not the repo's
# ONNX, OpenVINO or duplicate .bin copies, which would triple the download for bge-reranker-base).
_CHECKPOINT_SUFFIXES = (".json", ".txt", ".model")
_TRANSPORT_ERRORS = {"TransportError", "ConnectionError", "TimeoutException", "ConnectTimeout", "ReadTimeout"}


class HubUnreachable(Exception):
    """The hub could not be asked (offline, DNS, timeout, 5xx): the one case where a fallback is right."""


def checkpoint_files(names: list[str]) -> list[str]:
    """The repository's top-level files a cross-encoder needs, safetensors preferred over .bin weights."""
    top = [n for n in names if "/" not in n]
    weights = [n for n in top if n.endswith(".safetensors")] or [
        n for n in top if n.startswith("pytorch_model") and n.endswith(".bin")
    ]
    return sorted({n for n in top if n.endswith(_CHECKPOINT_SUFFIXES)} | set(weights))


def classify(repo_id: str, exc: BaseException) -> Exception:
    """HubUnreachable when the hub was not reached or failed on its side; ModelError when it said no."""
    from huggingface_hub import constants

    status = getattr(getattr(exc, "response", None), "status_code", None)
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    if isinstance(status, int) and status < 500 and status not in (408, 429):
        hint = "set HF_TOKEN for a gated or private model" if status in (401, 403) else "check the model id"
        return ModelError(
            f"the Hugging Face hub ({constants.ENDPOINT}) answered {status} for {repo_id}: {hint}. Not falling "
            "back to the test reranker, which would hide this; set HF_HUB_OFFLINE=1 to use it deliberately."
        )
    names = {c.__name__ for c in type(exc).__mro__}
    if "OfflineModeIsEnabled" in names:
        return HubUnreachable("HF_HUB_OFFLINE is set, so the hub was not asked")
    if status is not None or isinstance(exc, (OSError, TimeoutError)) or names & _TRANSPORT_ERRORS:
        return HubUnreachable(f"{constants.ENDPOINT} unreachable ({type(exc).__name__}: {first_line})")
    return ModelError(f"fetching {repo_id} failed: {type(exc).__name__}: {first_line}")


def fetch_checkpoint(repo_id: str, dest: Path, timeout: float = 10.0) -> str:
    """Download the checkpoint's files into `dest` (resumable there) and return the revision fetched."""
    from huggingface_hub import HfApi, hf_hub_download

    try:
        info = HfApi().model_info(repo_id, timeout=timeout)
        files = checkpoint_files([s.rfilename for s in info.siblings or []])
        if "config.json" not in files:
            raise ModelError(f"{repo_id} on the hub has no config.json: not a Hugging Face cross-encoder")
        for name in files:
            hf_hub_download(repo_id, name, revision=info.sha, local_dir=dest, etag_timeout=timeout)
    except ModelError:
        raise
    except Exception as exc:
        raise classify(repo_id, exc) from exc
    return str(info.sha)
