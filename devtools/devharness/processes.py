"""Services started by tests, benchmarks and eval: free ports, spawning, health waits, stopping.

Each service runs in its own session (a process group of its own) with its output in a log file, so that stopping
it also stops whatever it forked, a Ctrl-C in the terminal reaches only the caller (whose cleanup then stops the
service gracefully), and a service that dies while starting is reported with the last lines it wrote instead of
a bare timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

TAIL_CHARS = 3000  # enough for a Python traceback, short enough to read in a test report


class ServiceFailed(RuntimeError):
    """A service exited, or never became healthy; the message carries the tail of its log."""


def free_port() -> int:
    """A port nothing listens on right now; the OS picks it, and a later race for it is accepted."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """A stdlib HTTP server on a free loopback port, answering from a daemon thread: the stand-ins and gates that
    tests put where a real service would be (a hosted API, a proxy holding requests)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def log_tail(path: Path, chars: int = TAIL_CHARS) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@dataclass
class Service:
    """A spawned process with its log, the URL it serves (if any) and how long it took to become healthy."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    started: float = field(default_factory=time.monotonic)
    startup_s: float = 0.0  # set by wait_healthy

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, chars: int = TAIL_CHARS) -> str:
        return log_tail(self.log, chars)

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client on the service's URL; the long default timeout covers model warm-up on a busy CPU."""
        return httpx.Client(base_url=self.url, **{"timeout": 120, **kwargs})

    def send_signal(self, sig: int) -> None:
        """`sig` to the whole process group: the service and whatever it forked."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a graceful drain), SIGKILL after `timeout` seconds; returns the exit status."""
        if self.proc.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def spawn(
    cmd: Sequence[str],
    env: Mapping[str, str] | None,
    log: Path,
    *,
    cwd: Path | None = None,
    url: str = "",
    name: str | None = None,
) -> Service:
    """Start `cmd` in a session of its own, stdout and stderr into `log` (env None: the caller's environment)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd),
            env=None if env is None else dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Service(name or " ".join(cmd), proc, log, url)


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 20.0,
    interval: float = 0.05,
    what: str = "condition",
    service: Service | None = None,
) -> T:
    """Poll until `predicate` is truthy and return its value; with `service`, fail as soon as that one exits."""
    deadline = time.monotonic() + timeout
    while True:
        if service is not None and service.proc.poll() is not None:
            raise ServiceFailed(
                f"{service.name} exited with {service.proc.returncode} while waiting for {what}; "
                f"{service.log}:\n{service.tail()}"
            )
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 5) -> bool:
    """True when `url` answers 200; refused, reset or slow connections are just 'not yet'."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(
    service: Service,
    health: str | Callable[[], bool] = "/health",
    timeout: float = 180,
    interval: float = 0.3,
) -> Service:
    """Wait until the service is up (a path under its URL answering 200, or a probe); on failure stop it and raise.

    A service that exits while starting raises at once with its log tail; one that is still not healthy after
    `timeout` seconds is stopped first, so a failed start never leaves a process behind.
    """

    def probe() -> bool:
        return health() if callable(health) else http_ok(service.url + health)

    try:
        wait_for(probe, timeout, interval, what=f"{service.name} to become healthy", service=service)
    except TimeoutError as exc:
        service.stop()
        raise ServiceFailed(f"{exc}; {service.log}:\n{service.tail()}") from None
    service.startup_s = time.monotonic() - service.started
    return service


@contextlib.contextmanager
def serve(
    cmd: Sequence[str],
    env: Mapping[str, str] | None,
    log: Path,
    *,
    url: str,
    health: str | Callable[[], bool] = "/health",
    cwd: Path | None = None,
    timeout: float = 180,
    stop_timeout: float = 60,
    name: str | None = None,
) -> Iterator[Service]:
    """A healthy service for the length of a `with` block, always stopped afterwards (errors and Ctrl-C too)."""
    service = spawn(cmd, env, log, cwd=cwd, url=url, name=name)
    try:
        yield wait_healthy(service, health, timeout)
    finally:
        service.stop(stop_timeout)
