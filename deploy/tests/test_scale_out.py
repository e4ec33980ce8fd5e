"""The scale-out promises of the compose files (issue 13), and proof that scripts/check_deploy_semantics.py really
catches each way of breaking them: the checks run on the configuration Compose resolves, then on copies broken one
way at a time (a container_name on a scaled service, a fixed host port, a worker missing a setting, a static
proxy_pass, a Qdrant node sharing a volume, ...), each of which must fail the check that names it."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType

import pytest
import yaml
from conftest import ROOT

COMPOSE = ROOT / ".tools" / "bin" / "docker-compose"
EXAMPLE = (ROOT / ".env.example").read_text()


def load_checker():
    spec = importlib.util.spec_from_file_location("check_deploy_semantics", ROOT / "scripts/check_deploy_semantics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sem = load_checker()


def home(check: Callable) -> ModuleType:
    """The module whose globals a check reads (the checker is split over sibling modules in scripts/): patch there."""
    return sys.modules[check.__module__]


def resolved(*files: str, profiles: bool = True) -> dict:
    if not COMPOSE.is_file():
        pytest.skip(f"{COMPOSE} missing: `make check-deploy` installs it")
    cmd = [str(COMPOSE), "--env-file", "/dev/null"]
    for f in files:
        cmd += ["-f", f]
    cmd += ["--profile", "*"] if profiles else []
    out = subprocess.run(
        [*cmd, "config", "--format", "json"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)["services"]


@pytest.fixture(scope="module")
def stack() -> dict:
    return resolved("docker-compose.yml")


@pytest.fixture(scope="module")
def cluster() -> dict:
    return resolved("docker-compose.yml", "docker-compose.qdrant-cluster.yml", profiles=False)


def failed(run: Callable[[], None], capsys) -> list[str]:
    """The checks `run` failed (the checker keeps them in a module-level list)."""
    sem.failures.clear()
    run()
    capsys.readouterr()
    return list(sem.failures)


def test_the_stack_as_written_passes(stack, cluster, capsys):
    image = stack["qdrant"]["image"]
    assert failed(lambda: sem.check_services(stack, EXAMPLE), capsys) == []
    assert failed(lambda: sem.check_settings(stack, EXAMPLE), capsys) == []
    assert failed(lambda: sem.check_qdrant_cluster(cluster, "cluster", image), capsys) == []
    assert failed(sem.check_nginx, capsys) == []
    assert failed(sem.check_monitoring, capsys) == []


def test_the_default_stack_has_postgres_and_a_worker(stack):
    assert {"postgres", "worker"} <= set(stack) and sem.DEFAULT <= set(stack)
    assert stack["worker"]["image"] == stack["backend"]["image"]
    assert stack["backend"]["environment"]["INGEST_WORKERS"] == "0"
    assert stack["worker"]["environment"]["DATABASE_URL"].startswith("postgresql://")


def _drop(env_key: str) -> Callable[[dict], None]:
    return lambda s: s["worker"]["environment"].pop(env_key)


SERVICE_BREAKS: dict[str, tuple[Callable[[dict], None], str]] = {
    "worker container_name": (lambda s: s["worker"].update(container_name="rag-worker"), "worker: no container_name"),
    "backend host port": (
        lambda s: s["backend"].update(ports=[{"target": 8000, "published": "8000", "host_ip": "0.0.0.0"}]),
        "backend: no container_name and no host port",
    ),
    "worker without DATABASE_URL": (_drop("DATABASE_URL"), "worker: compose passes every setting"),
    "worker without WORKER_CONCURRENCY": (_drop("WORKER_CONCURRENCY"), "worker: compose passes every setting"),
    "worker on another image": (lambda s: s["worker"].update(image="other:1.0"), "worker: the backend's image"),
    "worker serving the API": (
        lambda s: s["worker"].update(command=["python", "-m", "rag_backend", "serve"]),
        "worker: runs `rag-backend worker`",
    ),
    "backend ingesting": (
        lambda s: s["backend"]["environment"].update(INGEST_WORKERS="4"),
        "backend: wired to the stack's services",
    ),
    "backend not waiting for postgres": (
        lambda s: s["backend"]["depends_on"].pop("postgres"),
        "backend: waits for postgres",
    ),
    "postgres unpinned": (lambda s: s["postgres"].update(image="postgres:latest"), "postgres: the official image"),
    "postgres on a bind mount": (
        lambda s: s["postgres"]["volumes"][0].update(type="bind", source="/srv/pg"),
        "postgres: data on a named volume",
    ),
    "postgres probed on the socket": (
        lambda s: s["postgres"]["healthcheck"].update(test=["CMD-SHELL", "pg_isready"]),
        "postgres: healthcheck pg_isready over TCP",
    ),
    "postgres published to the network": (
        lambda s: s["postgres"]["ports"][0].update(host_ip="0.0.0.0"),
        "postgres: port(s) [5432] published on 127.0.0.1 only",
    ),
    "API no longer on 8000": (
        lambda s: s["frontend"].update(ports=[p for p in s["frontend"]["ports"] if p["target"] != 8000]),
        "frontend: the backend's API published",
    ),
}


@pytest.mark.parametrize("what", SERVICE_BREAKS)
def test_each_broken_service_promise_is_caught(stack, what, capsys):
    breaks, expected = SERVICE_BREAKS[what]
    broken = copy.deepcopy(stack)
    breaks(broken)
    found = failed(lambda: sem.check_services(broken, EXAMPLE), capsys)
    found += failed(lambda: sem.check_settings(broken, EXAMPLE), capsys)
    assert any(expected in f for f in found), found


CLUSTER_BREAKS: dict[str, tuple[Callable[[dict], None], str]] = {
    "shared volume": (
        lambda s: s["qdrant-3"]["volumes"][0].update(source=s["qdrant-2"]["volumes"][0]["source"]),
        "a named storage volume per node",
    ),
    "node 2 not bootstrapped": (lambda s: s["qdrant-2"].update(command=["./qdrant"]), "--bootstrap"),
    "node 1 without --uri": (lambda s: s["qdrant"].update(command=["./qdrant"]), "node 1 started with --uri"),
    "cluster mode off": (
        lambda s: s["qdrant-3"]["environment"].update(QDRANT__CLUSTER__ENABLED="false"),
        "QDRANT__CLUSTER__ENABLED=true",
    ),
    "p2p port published": (
        lambda s: s["qdrant-2"].update(ports=[{"target": 6335, "published": "6335"}]),
        "6335 is not published",
    ),
    "one shard": (lambda s: s["worker"]["environment"].update(QDRANT_SHARD_NUMBER="1"), "worker waits for every node"),
    "backend on node 1 only": (
        lambda s: s["backend"]["environment"].update(QDRANT_URL="http://qdrant:6333"),
        "backend waits for every node",
    ),
    "backend not waiting for node 3": (
        lambda s: s["backend"]["depends_on"].pop("qdrant-3"),
        "backend waits for every node",
    ),
}


@pytest.mark.parametrize("what", CLUSTER_BREAKS)
def test_each_broken_cluster_promise_is_caught(cluster, stack, what, capsys):
    breaks, expected = CLUSTER_BREAKS[what]
    broken = copy.deepcopy(cluster)
    breaks(broken)
    found = failed(lambda: sem.check_qdrant_cluster(broken, "cluster", stack["qdrant"]["image"]), capsys)
    assert any(expected in f for f in found), found


NGINX_BREAKS = {
    "static proxy_pass": (("proxy_pass $backend;", "proxy_pass http://backend:8000;"), "use a variable"),
    "no resolver": (("resolver ${NGINX_RESOLVER} valid=10s ipv6=off;", ""), "nginx: resolver"),
    "resolved once a day": (("valid=10s", "valid=1d"), "nginx: resolver"),
    "API buffered": (("        proxy_buffering off;\n        proxy_request_buffering off;\n", ""), "SSE-safe"),
    "no API server": (("listen 8000;", "listen 8080;"), "server on 8000"),
    "unrendered variable": (("server_tokens off;", "server_tokens ${SERVER_TOKENS};"), "envsubst filter"),
}


@pytest.mark.parametrize("what", NGINX_BREAKS)
def test_each_broken_nginx_promise_is_caught(tmp_path, monkeypatch, what, capsys):
    (old, new), expected = NGINX_BREAKS[what]
    text = home(sem.check_nginx).NGINX_TEMPLATE.read_text()
    assert old in text
    broken = tmp_path / "default.conf.template"
    broken.write_text(text.replace(old, new))
    monkeypatch.setattr(home(sem.check_nginx), "NGINX_TEMPLATE", broken)
    assert any(expected in f for f in failed(sem.check_nginx, capsys))


def test_a_worker_scraped_as_one_static_target_is_caught(tmp_path, monkeypatch, capsys):
    prom = yaml.safe_load(home(sem.check_monitoring).PROMETHEUS.read_text())
    [job] = [j for j in prom["scrape_configs"] if j["job_name"] == "worker"]
    job.pop("dns_sd_configs")
    job["static_configs"] = [{"targets": ["worker:8002"]}]
    broken = tmp_path / "prometheus.yml"
    broken.write_text(yaml.safe_dump(prom))
    monkeypatch.setattr(home(sem.check_monitoring), "PROMETHEUS", broken)
    assert any("found by DNS" in f for f in failed(sem.check_monitoring, capsys))


def test_new_settings_are_documented_where_compose_users_look():
    """The compose-only variables of the scale-out (postgres, worker) have their line in .env.example, and the
    cluster override's are documented like the main file's (check-deploy.sh greps all three files)."""
    for var in ("POSTGRES_PASSWORD", "POSTGRES_IMAGE", "POSTGRES_MAX_CONNECTIONS", "WORKER_MEMORY_LIMIT"):
        assert f"\n{var}=" in EXAMPLE, var
    assert "\n# STACK_DATABASE_URL=" in EXAMPLE
    text = (ROOT / "scripts/check-deploy.sh").read_text()
    assert "docker-compose.qdrant-cluster.yml" in text and '"$CLUSTER"' in text
