"""The running compose stack, as `scripts/containers test` (make test-compose) brings it up: its engine, ports and
Compose command come from .stack/engine.env through the environment. A module of helpers and fixtures, not a
conftest.py: deploy/tests' modules import their own `conftest`, which a second one would shadow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
# The backend's own test documents (real PDF, DOCX, HTML and Markdown files built with fpdf2 and python-docx).
sys.path.insert(0, str(ROOT / "backend" / "tests"))
import docs  # noqa: E402, F401  (re-exported to the tests: the backend's real test documents)

SERVICES = ("ml-api", "backend", "worker", "frontend", "postgres", "redis", "qdrant")


@dataclass
class Stack:
    """Compose and the engine as `make compose-up` left them, and the published ports."""

    compose_cmd: list[str]
    engine: str
    env: dict[str, str]

    def port(self, name: str) -> int:
        return int(self.env[name])

    @property
    def page(self) -> str:
        return f"http://127.0.0.1:{self.port('FRONTEND_PORT')}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port('BACKEND_PORT')}"

    @property
    def ml(self) -> str:
        return f"http://127.0.0.1:{self.port('ML_API_PORT')}"

    def compose(self, *args: str, timeout: float = 900, check: bool = True, **env: str) -> str:
        cmd = [*self.compose_cmd, *args]
        done = subprocess.run(
            cmd, cwd=ROOT, env=self.env | env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode:
            raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def engine_cmd(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [self.engine, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert done.returncode == 0, f"{self.engine} {' '.join(args)}: {done.stderr}"
        return done.stdout

    def containers(self) -> list[dict[str, Any]]:
        """`compose ps --all` as a list of dicts (Compose prints one JSON object per line or one array)."""
        out = self.compose("ps", "--all", "--format", "json").strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, tail: int = 60) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), check=False, timeout=120)

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, timeout: float = 600) -> list[dict[str, Any]]:
        """Every container of these services running, and healthy where it has a healthcheck."""
        deadline = time.monotonic() + timeout
        while True:
            rows = [c for c in self.containers() if c.get("Service") in services]
            seen = {c["Service"] for c in rows}
            bad = [
                f"{c['Name']}: {c.get('State')} {c.get('Health') or ''}"
                for c in rows
                if c.get("State") != "running" or (c.get("Health") or "healthy") != "healthy"
            ]
            missing = set(services) - seen
            if not bad and not missing:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not healthy after {timeout:.0f} s: {bad}, missing {sorted(missing)}\n{self.logs()}"
                )
            time.sleep(3)


@pytest.fixture(scope="session")
def stack() -> Stack:
    env = dict(os.environ)
    compose = [env["STACK_COMPOSE"], "-p", env.get("COMPOSE_PROJECT_NAME", "rag")]
    compose += ["-f", "docker-compose.yml", "-f", "docker-compose.cpu.yml"]
    return Stack(compose_cmd=compose, engine=env.get("CONTAINER_ENGINE", "docker"), env=env)


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    # The stack runs AUTH_MODE=users: scripts/containers brings it up with an operator key (API_KEY, admin rights).
    key = os.environ.get("API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(timeout=httpx.Timeout(120, connect=10), headers=headers) as client:
        yield client


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 2) -> Any:
    """probe() until it returns something truthy; its last exception or value is in the failure message."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
            last = value
        except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
