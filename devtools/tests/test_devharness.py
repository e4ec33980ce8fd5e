"""The harness on tiny real processes: what every suite, benchmark and eval relies on when it starts services."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from devharness import ServiceFailed, free_port, host_info, serve, spawn, wait_for, wait_healthy, write_results
from devharness.cpu import machine_cpu_s, process_cpu_s


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for its new parent counts: it runs nothing any more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_serve_waits_for_health_then_stops_the_service(tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "health").write_text("ok")
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path / "www")]
    with serve(cmd, None, tmp_path / "http.log", url=f"http://127.0.0.1:{port}", timeout=30) as service:
        assert service.startup_s > 0
        with service.client() as client:
            assert client.get("/health").text == "ok"
    assert service.proc.returncode == -signal.SIGTERM
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_service_that_dies_fails_fast_with_its_log_tail(tmp_path: Path) -> None:
    service = spawn(py("import sys; print('no model at /models/x', flush=True); sys.exit(3)"), None, tmp_path / "a.log")
    t0 = time.monotonic()
    with pytest.raises(ServiceFailed, match=r"(?s)exited with 3.*no model at /models/x"):
        wait_healthy(service, "/health", timeout=60)
    assert time.monotonic() - t0 < 30, "no waiting for the timeout once the process is gone"


def test_a_service_never_healthy_is_stopped_and_reported(tmp_path: Path) -> None:
    cmd = py("import time; print('still warming up', flush=True); time.sleep(120)")
    service = spawn(cmd, None, tmp_path / "slow.log", url=f"http://127.0.0.1:{free_port()}", name="slow")
    with pytest.raises(ServiceFailed, match=r"(?s)timed out after 1s waiting for slow.*still warming up"):
        wait_healthy(service, "/health", timeout=1)
    assert service.proc.poll() is not None, "a failed start leaves no process behind"


def test_stop_reaches_what_the_service_forked(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    service = spawn(["bash", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], None, tmp_path / "fork.log")
    child = int(wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, what="the forked child"))
    service.stop(10)
    wait_for(lambda: gone(child), 10, what="the forked child to exit")


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True)"
    code += "; time.sleep(120)"
    service = spawn(py(code), None, tmp_path / "stubborn.log")
    wait_healthy(service, lambda: "ready" in service.output(), timeout=10, interval=0.05)
    assert service.stop(timeout=0.5) == -signal.SIGKILL


def test_spawn_passes_env_and_cwd(tmp_path: Path) -> None:
    code = "import os; print(os.environ['HARNESS_VALUE'], os.getcwd(), 'PATH' in os.environ, flush=True)"
    service = spawn(py(code), {"HARNESS_VALUE": "42"}, tmp_path / "logs" / "env.log", cwd=tmp_path)
    assert service.proc.wait(30) == 0
    assert service.output().split() == ["42", str(tmp_path), "False"], "only the given environment"


def test_wait_for_returns_the_value_or_names_what_it_waited_for() -> None:
    calls = iter([None, "", "done"])
    assert wait_for(lambda: next(calls), 5, 0.01) == "done"
    with pytest.raises(TimeoutError, match="the moon"):
        wait_for(lambda: False, 0.1, 0.01, what="the moon")


def test_write_results_is_timestamped_json(tmp_path: Path) -> None:
    started = time.mktime((2026, 11, 21, 9, 30, 5, 0, 0, -1))
    data = {"machine": host_info(), "figures": [1.5, 2]}
    path = write_results(tmp_path / "bench-results", "eval-scifact-test", data, started)
    assert path.name == "eval-scifact-test-20261121-093005.json"
    assert json.loads(path.read_text()) == data
    assert data["machine"]["cpus"] == os.cpu_count() and data["machine"]["usable_cores"] >= 1


def test_cpu_accounting_counts_a_process_its_group_and_the_machine(tmp_path: Path) -> None:
    """A leader whose first child burns CPU and exits, then whose second child burns CPU for good: the group's
    seconds include both the reaped child's and the live one's, the leader's own do not, the machine's busy seconds
    cover them; a process that is gone raises unless `missing_ok`."""
    burn = "import sys, time\nt = time.process_time()\nwhile time.process_time() - t < float(sys.argv[1]):\n    pass\n"
    (tmp_path / "burn.py").write_text(burn)
    script, marker = str(tmp_path / "burn.py"), tmp_path / "first-done"
    leader = (
        f"import subprocess, sys, time; subprocess.run([sys.executable, {script!r}, '0.6']); "
        f"open({str(marker)!r}, 'w').close(); subprocess.Popen([sys.executable, {script!r}, '1e9']); time.sleep(30)"
    )
    busy0, _ = machine_cpu_s()
    proc = subprocess.Popen([sys.executable, "-c", leader], start_new_session=True)
    try:
        wait_for(marker.exists, 30, 0.05, "the first child to exit")
        reaped = process_cpu_s(proc.pid, group=True)
        assert reaped >= 0.6  # gone from /proc, its seconds now in the leader's account of its children
        wait_for(lambda: process_cpu_s(proc.pid, group=True) >= reaped + 0.3, 30, 0.05, "the live child's seconds")
        assert process_cpu_s(proc.pid) < 0.5  # the leader itself only started its children
        assert machine_cpu_s()[0] - busy0 >= 0.8
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with pytest.raises(OSError):
        process_cpu_s(proc.pid)
    assert process_cpu_s(proc.pid, missing_ok=True) == 0.0
