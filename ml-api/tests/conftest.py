"""Tests run against real `ml-api serve` processes with the real models from the root models/ directory."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from devharness import Service, free_port, spawn, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
EMBED_DIR = MODELS / "all-MiniLM-L6-v2"
RERANK_DIR = MODELS / "minilm-l6-crossencoder-test"


Server = Service  # a running `ml-api serve`: url, proc, log, client(), output()


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAX_", "API_KEY", "CORS_"))}
    env.update(
        {
            "DEVICE": "cpu",
            "EMBED_MODEL": str(EMBED_DIR),
            "RERANK_MODEL": str(RERANK_DIR),
            "MODELS_DIR": str(MODELS),
            "HOST": "127.0.0.1",
            "LOG_JSON": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "GRACEFUL_SHUTDOWN_S": "30",
        }
    )
    env.update(overrides)
    return env


def start_server(tmp: Path, name: str, timeout: float = 180, **env: str) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "ml_api", "serve"]
    url, log = f"http://127.0.0.1:{port}", tmp / f"{name}.log"
    server = spawn(cmd, base_env(PORT=str(port), **env), log, cwd=ROOT, url=url, name=f"ml-api ({name})")
    return wait_healthy(server, "/health", timeout, interval=0.5)


def stop_server(server: Server) -> int:
    return server.stop(60)


@pytest.fixture(scope="session", autouse=True)
def _models_prepared() -> None:
    if not (EMBED_DIR / "manifest.json").is_file() or not RERANK_DIR.is_dir():
        pytest.fail("models are not prepared: run `make models` (or `ml-api models prepare`) first")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default configuration, shared by most tests."""
    srv = start_server(tmp_path_factory.mktemp("srv"), "default")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Small limits, an API key and a CORS allow-list, to exercise the guards."""
    srv = start_server(
        tmp_path_factory.mktemp("strict"),
        "strict",
        API_KEY="s3cret",
        MAX_CONCURRENT_REQUESTS="2",
        MAX_CLIENT_BATCH_SIZE="64",
        MAX_REQUEST_BYTES="65536",
        CORS_ALLOW_ORIGINS="http://localhost:3000",
    )
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def reason(res: httpx.Response) -> tuple[str, str]:
    """(message, kind) from either error shape: TEI's {error, error_type}, or OpenAI's under /v1/ and /v2/."""
    body = res.json()
    if isinstance(body["error"], dict):
        return body["error"]["message"], body["error"]["code"]
    return body["error"], body["error_type"]


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample over the series matching `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        series = head[len(name) :]
        if series and not series.startswith("{"):
            continue
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total
