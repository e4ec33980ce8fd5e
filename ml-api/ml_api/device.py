"""Device choice, kept pure so the CUDA branch is testable on a machine without a GPU."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Literal

from ml_api.errors import DeviceUnavailable
from ml_api.registry import torch_available

Device = Literal["cuda", "cpu"]


@dataclass(frozen=True)
class DevicePlan:
    device: Device
    ort_providers: list[str]
    rerank_fp16: bool
    reason: str


TORCH_PROBE = "torch.cuda.is_available() is False (CPU torch build, or no driver/GPU visible)"
DRIVER_PROBE = "the CUDA driver (libcuda.so.1) finds no GPU (asked directly: this variant has no torch)"


def plan_device(
    requested: str, ort_available: list[str], torch_cuda: bool, fp16: bool = True, probe: str = TORCH_PROBE
) -> DevicePlan:
    """Decide once for both models, so the embedder and reranker never disagree about the GPU.

    `torch_cuda` is whether a GPU is usable: torch's answer in the full variant, the driver's in the slim one
    (`probe` says which, for the reason).
    """
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
        missing.append(probe)
    if requested == "cuda":
        raise DeviceUnavailable("DEVICE=cuda but no usable GPU: " + "; ".join(missing))
    return DevicePlan("cpu", ["CPUExecutionProvider"], False, "DEVICE=auto: " + "; ".join(missing))


def cuda_driver_sees_gpu() -> bool:
    """torch's check without torch: cuInit succeeds and counts at least one device."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    return driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


def detect(requested: str, fp16: bool) -> DevicePlan:
    import onnxruntime as ort

    providers = ort.get_available_providers()
    if not torch_available():  # the slim variant: ONNX models only
        return plan_device(requested, providers, cuda_driver_sees_gpu(), fp16, DRIVER_PROBE)
    import torch

    return plan_device(requested, providers, torch.cuda.is_available(), fp16)


def free_memory_mb(device: str) -> tuple[float, str] | None:
    """The memory models may still take, and where that figure comes from; None when it cannot be read.

    CPU: the kernel's MemAvailable. CUDA: torch's `mem_get_info` where torch is installed (the slim variant
    cannot ask, so it relies on MODELS_MAX_MEMORY_MB).
    """
    if device == "cuda":
        if not torch_available():
            return None
        import torch

        free, _ = torch.cuda.mem_get_info(0)
        return free / 2**20, "the GPU's free memory"
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024, "the machine's available memory (MemAvailable)"
    except OSError:
        return None
    return None
