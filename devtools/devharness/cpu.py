"""CPU accounting for benchmarks, from /proc (Linux): who used the cores while a figure was being measured.

The machines are shared, so a benchmark reports the CPU seconds of the processes it measures and of the machine as
a whole; the difference is what other programs took, which tells a skewed row from a real difference.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(path: Path) -> list[str]:
    return path.read_text().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces


def _used_s(fields: list[str], *, reaped: bool = False) -> float:
    """utime + stime of every thread; with `reaped`, also cutime + cstime: children that exited and were waited for
    leave /proc, and their seconds move to their parent's account."""
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def process_cpu_s(pid: int, *, group: bool = False, missing_ok: bool = False) -> float:
    """CPU seconds of a live process, or with `group` of every process in its process group (a service spawned by
    devharness leads its own: a server's worker children count too, the ones that already exited as well). A process
    that is gone raises, or with `missing_ok` counts 0."""
    if group:
        total = 0.0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError):  # processes come and go while the directory is read
                fields = _stat(stat)
                if int(fields[2]) == pid:
                    total += _used_s(fields, reaped=True)
        return total
    try:
        return _used_s(_stat(Path(f"/proc/{pid}/stat")))
    except OSError:
        if missing_ok:
            return 0.0
        raise


def machine_cpu_s() -> tuple[float, float]:
    """Busy (user, nice, system, irq, softirq) and stolen CPU seconds of the whole machine since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq) / TICKS, steal / TICKS
