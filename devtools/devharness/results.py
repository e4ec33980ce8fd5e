"""Results files of benchmarks and eval: one timestamped JSON per run, with the machine it ran on.

Figures from different runs are only comparable next to the machine that produced them, so every results file
carries the same host block, and files never overwrite each other (the name holds the start time).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def host_info() -> dict[str, Any]:
    """What bounds the figures: the cores this process may use (not just the machine's), the CPU, Python."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu_model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return {
        "cpus": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def write_results(out_dir: Path, stem: str, data: Any, started: float | None = None) -> Path:
    """Write `data` to out_dir/<stem>-<YYYYmmdd-HHMMSS>.json (the run's start time, or now); returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(started))}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
