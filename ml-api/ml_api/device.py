"""Device choice, kept pure so the CUDA branch is testable on a machine without a GPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ml_api.errors import DeviceUnavailable

Device = Literal["cuda", "cpu"]


@dataclass(frozen=True)
class DevicePlan:
    device: Device
    ort_providers: list[str]
    rerank_fp16: bool
    reason: str


def plan_device(requested: str, ort_available: list[str], torch_cuda: bool, fp16: bool = True) -> DevicePlan:
    """Decide once for both models, so the embedder and reranker never disagree about the GPU."""
    ort_cuda = "CUDAExecutionProvider" in ort_available
    if requested not in ("auto", "cuda", "cpu"):
        raise ValueError(f"DEVICE must be auto, cuda or cpu, got {requested!r}")
    if requested == "cpu":
        return DevicePlan("cpu", ["CPUExecutionProvider"], False, "DEVICE=cpu")
    if ort_cuda and torch_cuda:
        return DevicePlan(
            "cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], fp16, f"DEVICE={requested}: GPU usable"
        )
    missing = []
    if not ort_cuda:
        missing.append("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu, not onnxruntime)")
    if not torch_cuda:
        missing.append("torch.cuda.is_available() is False (CPU torch build, or no driver/GPU visible)")
    if requested == "cuda":
        raise DeviceUnavailable("DEVICE=cuda but no usable GPU: " + "; ".join(missing))
    return DevicePlan("cpu", ["CPUExecutionProvider"], False, "DEVICE=auto: " + "; ".join(missing))


def detect(requested: str, fp16: bool) -> DevicePlan:
    import onnxruntime as ort
    import torch

    return plan_device(requested, ort.get_available_providers(), torch.cuda.is_available(), fp16)
