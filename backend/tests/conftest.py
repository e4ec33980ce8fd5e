"""Backend tests run against real processes: `ml-api serve` with the real models from the root models/
directory, `rag-backend serve` on the embedded Qdrant engine, and a real Redis server (the machine's on
127.0.0.1:6379 with a DB number and key prefix of our own, or one started here when none answers). The catalog suite
and the multi-process tests use a real PostgreSQL the same way (the machine's on 127.0.0.1:5432, a database of
their own created and dropped per test, or one started here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis
from devharness import Service, free_port, spawn, wait_healthy
from devharness.postgres import scratch_database
from fake_llm import FakeLLM

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
ML_API_PYTHON = ROOT / "ml-api" / ".venv" / "bin" / "python"
TOKENIZER = MODELS / "all-MiniLM-L6-v2" / "tokenizer.json"
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "13"))


@dataclass
class Proc:
    """A service under test; `stop()` says whether it shut down cleanly (uvicorn re-raises SIGTERM after draining)."""

    service: Service

    @property
    def url(self) -> str:
        return self.service.url

    def client(self, **kwargs: Any) -> httpx.Client:
        return self.service.client(**kwargs)

    def output(self) -> str:
        return self.service.output()

    def stop(self) -> bool:
        code = self.service.stop(60)
        return code in (0, -signal.SIGTERM) and '"msg":"stopped"' in self.output()


def start(name: str, cmd: list[str], env: dict[str, str], log: Path, port: int, timeout: float = 180) -> Proc:
    service = spawn(cmd, env, log, cwd=ROOT, url=f"http://127.0.0.1:{port}", name=name)
    return Proc(wait_healthy(service, "/health", timeout))


def clean_env() -> dict[str, str]:
    """The test's own settings only: nothing from the developer's shell or .env leaks in."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_FIND_LINKS", "UV_FIND_LINKS")
    return {k: v for k, v in os.environ.items() if k in keep}


@pytest.fixture
def anyio_backend() -> str:
    """The async tests run on asyncio only (the app's loop), never trio."""
    return "asyncio"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeLLM]:
    """An OpenAI/Ollama-compatible stand-in over real HTTP, for the LLM paths no real model here can take on demand."""
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="session")
def ml_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    if not ML_API_PYTHON.exists() or not (MODELS / "all-MiniLM-L6-v2" / "manifest.json").is_file():
        pytest.fail("ml-api or its models are not installed: run `make models` first")
    proc = start_ml_api(tmp_path_factory.mktemp("ml-api") / "ml-api.log", free_port())
    yield proc
    proc.stop()


def start_ml_api(log: Path, port: int, **overrides: str) -> Proc:
    """ml-api on the test models; tests that kill and restart it start their own on a port they keep.
    `overrides` are ml-api settings (API_KEY, MAX_CLIENT_BATCH_SIZE, ...) for tests of the limits it advertises."""
    env = clean_env() | {
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DEVICE": "cpu",
        "MODELS_DIR": str(MODELS),
        "EMBED_MODEL": str(MODELS / "all-MiniLM-L6-v2"),
        "RERANK_MODEL": str(MODELS / "minilm-l6-crossencoder-test"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return start("ml-api", [str(ML_API_PYTHON), "-m", "ml_api", "serve"], env | overrides, log, port)


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis on our own DB number; a redis-server of our own where none answers."""
    url = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{TEST_REDIS_DB}")
    if _redis_answers(url):
        yield url
        return
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@dataclass
class RedisServer:
    url: str
    port: int
    service: Service

    def stop(self) -> None:
        self.service.stop(10)


def start_redis(tmp: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no Redis answers and redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp)]
    url = f"redis://127.0.0.1:{port}/{TEST_REDIS_DB}"
    server = spawn(cmd, None, tmp / f"redis-{port}.log", name=f"redis-server on port {port}")
    wait_healthy(server, lambda: _redis_answers(url), timeout=10, interval=0.05)
    return RedisServer(url, port, server)


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix per test; its keys are removed afterwards (other users of the DB are untouched)."""
    value = f"rag-test-{uuid.uuid4().hex[:8]}:"
    yield value
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{value}*"))
    if keys:
        client.delete(*keys)


def _postgres_answers(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to the `postgres` database of the machine's PostgreSQL (trust auth), or of one of our own (initdb)
    where none answers. Tests create and drop their own databases in it (`database_url`)."""
    url = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if _postgres_answers(url):
        yield url
        return
    bindir = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
    if bindir is None:
        pytest.fail("no PostgreSQL answers and none is installed (Debian: apt-get install postgresql)")
    tmp = tmp_path_factory.mktemp("postgres")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    if as_user:
        shutil.chown(tmp, "postgres")
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(tmp / "data"), "-U", "postgres", "-A", "trust"],
                   check=True, capture_output=True)  # fmt: skip
    port = free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    cmd = [*as_user, str(bindir / "postgres"), "-D", str(tmp / "data"), "-p", str(port), "-k", str(tmp),
           "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]  # fmt: skip
    server = spawn(cmd, None, tmp_path_factory.mktemp("postgres-log") / "postgres.log", name=f"postgres on {port}")
    wait_healthy(server, lambda: _postgres_answers(url), timeout=30, interval=0.1)
    yield url
    server.stop(10)


@pytest.fixture
def database_url(postgres_admin: str) -> Iterator[str]:
    with scratch_database(postgres_admin) as url:
        yield url


def backend_env(data_dir: Path, ml_api_url: str, **overrides: str) -> dict[str, str]:
    env = clean_env() | {
        "DATA_DIR": str(data_dir),
        "EMBED_API_URL": ml_api_url,
        "RERANK_API_URL": ml_api_url,
        "CHUNK_TOKENIZER": str(TOKENIZER),
        "BACKEND_HOST": "127.0.0.1",
        "LOG_JSON": "true",
        "ML_API_RETRIES": "1",
        "LLM_PROVIDERS": "",  # extractive answers unless a test points the chain at its fake servers
    }
    return env | overrides


def start_backend(tmp: Path, ml_api_url: str, name: str = "backend", **overrides: str) -> Proc:
    port = free_port()
    env = backend_env(tmp / f"{name}-data", ml_api_url, BACKEND_PORT=str(port), **overrides)
    cmd = [sys.executable, "-m", "rag_backend", "serve"]
    return start(name, cmd, env, tmp / f"{name}.log", port, timeout=60)


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory, ml_api: Proc, redis_url: str) -> Iterator[Proc]:
    """The default backend: embedded Qdrant engine, real Redis."""
    prefix = f"rag-test-{uuid.uuid4().hex[:8]}:"
    proc = start_backend(tmp_path_factory.mktemp("backend"), ml_api.url, REDIS_URL=redis_url, CACHE_PREFIX=prefix)
    yield proc
    proc.stop()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


def wait_ready(client: httpx.Client, doc_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = client.get(f"/api/documents/{doc_id}").json()
        if doc["status"] in ("ready", "failed"):
            return doc
        time.sleep(0.1)
    raise AssertionError(f"document {doc_id} not finished after {timeout}s: {doc}")


def sse(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """Server-sent events as (event, data) pairs, from a streamed response's lines."""
    event = None
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event or "message", orjson.loads(line[6:])


def ingest_solar(backend: Proc) -> None:
    """The answer tests' one document (docs.SOLAR), uploaded and ready before any question."""
    from docs import SOLAR

    with backend.client() as c:
        doc = c.post("/api/documents", files=[("files", ("solar.md", SOLAR.encode(), "text/markdown"))]).json()
        assert wait_ready(c, doc["documents"][0]["id"])["status"] == "ready"
