"""What the deployment files promise, checked on the configurations Compose resolved (called by check-deploy.sh).

Usage: check_deploy_semantics.py DIR ENV_EXAMPLE, where DIR holds `docker compose config --format json` output as
{gpu,cpu}-{default,ollama,monitoring,logging,ollama+monitoring+logging}.json (no .env), example-all.json (every
profile, ENV_EXAMPLE as .env) and qdrant-cluster.json / qdrant-cluster-example.json (docker-compose.qdrant-cluster.yml
on top, without and with ENV_EXAMPLE). Prints one `  ok  ...` or `  FAIL ...` line per check and exits 1 if any
failed. Needs PyYAML (check-deploy.sh installs it into .tools).

This module checks the services, profiles and settings and runs everything; its siblings hold the rest:
check_deploy_scale_out.py (nginx over the replicas, the Qdrant cluster), check_deploy_monitoring.py (Prometheus,
Grafana, Filebeat) and check_deploy_common.py (the failure list and the service accessors).
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import yaml

# The sibling modules live next to this file; put its directory on sys.path so they import both when it runs as a
# script and when it is loaded by path (deploy/tests uses importlib.util.spec_from_file_location).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_deploy_common import ROOT, check, devices, failures, health_test, limits, mounts
from check_deploy_monitoring import (
    DASHBOARDS,
    FILEBEAT,
    GRAFANA_PROVISIONING,
    PROMETHEUS,
    check_logging,
    check_monitoring,
)
from check_deploy_scale_out import SCALED, check_nginx, check_qdrant_cluster

DEFAULT = {"ml-api", "backend", "worker", "frontend", "postgres", "redis", "qdrant"}
PROFILES = {
    "ollama": {"ollama"},
    "monitoring": {"prometheus", "grafana"},
    "logging": {"elasticsearch", "filebeat"},
    "tracing": {"otel-collector", "jaeger"},
}
TRACING = ROOT / "deploy/tracing/otel-collector.yaml"
GPU_SERVICES = {"ml-api", "ollama"}
LOCAL_ONLY = {
    "postgres": [5432],
    "redis": [6379],
    "qdrant": [6333, 6334],
    "elasticsearch": [9200],
    "prometheus": [9090],
    "grafana": [3000],
}
ML_SETTINGS = ROOT / "ml-api/ml_api/core/config.py"
BACKEND_SETTINGS = ROOT / "backend/rag_backend/core/config.py"
# How the backend container reaches the rest of the stack, whatever .env holds for `make dev`.
BACKEND_WIRING = {
    "EMBED_API_URL": "http://ml-api:8001",
    "RERANK_API_URL": "http://ml-api:8001",
    "QDRANT_URL": "http://qdrant:6333",
    "REDIS_URL": "redis://redis:6379/0",
    "OLLAMA_URL": "http://ollama:11434",
    "DATA_DIR": "/data",
    "BACKEND_HOST": "0.0.0.0",
    "BACKEND_PORT": "8000",
    # The postgres service with the defaults of POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB.
    "DATABASE_URL": "postgresql://rag:rag@postgres:5432/rag",
    # The API processes ingest nothing: the worker service does, and Prometheus scrapes it on 8002.
    "INGEST_WORKERS": "0",
    "WORKER_PORT": "8002",
}


def settings_fields(path: Path) -> list[str]:
    """Every field of the Settings class, upper-cased: each is an environment variable."""
    tree = ast.parse(path.read_text())
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Settings")
    return [n.target.id.upper() for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]


def image_version(image: str) -> tuple[int, ...]:
    tag = image.rsplit(":", 1)[-1].lstrip("v")
    return tuple(int(x) for x in re.findall(r"\d+", tag.split("-")[0])[:3])


def check_variants(configs: dict[str, dict], example: str) -> None:
    for key, (gpu, cpu) in configs.items():
        gs, cs = gpu["services"], cpu["services"]
        expected = set(DEFAULT)
        if key != "default":
            for p in key.split("+"):
                expected |= PROFILES[p]
        check(set(gs) == expected == set(cs), f"[{key}] services: {', '.join(sorted(gs))}")
        reserved = {n for n, s in gs.items() if devices(s)}
        check(reserved == GPU_SERVICES & set(gs), f"[{key}] GPU file reserves GPUs for: {', '.join(sorted(reserved))}")
        for n in reserved:
            check(
                any(
                    d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or []) and d.get("count") == 1
                    for d in devices(gs[n])
                ),
                f"[{key}] {n}: 1 nvidia GPU by default",
            )
        check(not any(devices(s) for s in cs.values()), f"[{key}] CPU override removes every GPU reservation")
        check(
            cs["ml-api"]["environment"].get("DEVICE") == "cpu" and gs["ml-api"]["environment"].get("DEVICE") == "auto",
            f"[{key}] ml-api DEVICE: auto (GPU file), cpu (CPU override)",
        )
        check(
            all(gs[n].get("image") == cs[n].get("image") for n in gs if n != "ml-api"),
            f"[{key}] both variants run the same images, but ml-api",
        )
        check(
            cs["ml-api"]["image"] == gs["ml-api"]["image"].replace(":latest-", ":latest-cpu-")
            and cs["ml-api"]["build"].get("target") == "runtime-cpu"
            and gs["ml-api"]["build"].get("target") == "runtime",
            f"[{key}] ml-api: the CUDA image (target runtime), its CPU build with the CPU file (runtime-cpu)",
        )


def check_services(s: dict, example: str) -> None:
    ml, be, fe = s["ml-api"], s["backend"], s["frontend"]
    # Every service: restart policy, json-file logs (what Filebeat reads), pinned images.
    check(
        all(v.get("restart") in ("unless-stopped", "always") for v in s.values()), "every service has a restart policy"
    )
    check(
        all((v.get("logging") or {}).get("driver") == "json-file" for v in s.values()),
        "every service logs through json-file (rotated; read by the logging profile)",
    )
    unpinned = [
        n
        for n, v in s.items()
        if "build" not in v
        and (
            ":" not in v["image"].rsplit("/", 1)[-1]
            or v["image"].endswith(":latest")
            or not re.search(r":v?\d+\.\d+", v["image"])
        )
    ]
    check(not unpinned, "third-party images pinned to a version tag" + (f" (not: {unpinned})" if unpinned else ""))
    for n, ports in LOCAL_ONLY.items():
        published = [p for p in s[n].get("ports") or [] if p.get("target") in ports]
        check(
            len(published) == len(ports) and all(p.get("host_ip") == "127.0.0.1" for p in published),
            f"{n}: port(s) {ports} published on 127.0.0.1 only",
        )
    # ml-api, as before this issue.
    models = mounts(ml, "/models")
    check(
        len(models) == 1 and models[0].get("read_only") is True and models[0].get("type") == "bind",
        "ml-api: root models/ mounted read-only at /models",
    )
    check(ml["environment"].get("MODELS_DIR") == "/models", "ml-api: MODELS_DIR=/models")
    check("/ready" in health_test(ml), "ml-api: healthcheck probes /ready (readiness: what depends_on waits for)")
    check(
        any(p.get("target") == 8001 and str(p.get("published")) == "8001" for p in ml.get("ports") or []),
        "ml-api: 8001 published",
    )
    # backend (the API) and worker (ingestion): one image, one environment, the same mounts, each its own command.
    wk = s["worker"]
    wiring = {**BACKEND_WIRING, "CHUNK_TOKENIZER": "/models/all-MiniLM-L6-v2/tokenizer.json", "LOG_JSON": "true"}
    for name, svc in (("backend", be), ("worker", wk)):
        check(
            svc.get("build", {}).get("context", "").endswith("/backend") and svc.get("image") == be.get("image"),
            f"{name}: the backend's image ({svc.get('image')}), built from backend/",
        )
        deps = svc.get("depends_on") or {}
        check(
            all(
                (deps.get(d) or {}).get("condition") == "service_healthy"
                for d in ("postgres", "ml-api", "redis", "qdrant")
            ),
            f"{name}: waits for postgres, ml-api, redis and qdrant to be healthy",
        )
        env = svc["environment"]
        wrong = {k: env.get(k) for k, v in wiring.items() if env.get(k) != v}
        check(
            not wrong,
            f"{name}: wired to the stack's services, postgres, /data and /models"
            + (f" (wrong: {wrong})" if wrong else ""),
        )
        svc_models = mounts(svc, "/models")
        check(
            len(svc_models) == 1
            and svc_models[0].get("read_only") is True
            and svc_models[0].get("source") == models[0].get("source"),
            f"{name}: the same root models/ directory mounted read-only at /models",
        )
        data = mounts(svc, "/data")
        check(len(data) == 1 and data[0].get("type") == "volume", f"{name}: DATA_DIR on a named volume")
        check(limits(svc).get("memory") and not devices(svc), f"{name}: memory limit, no GPU")
        # Scaling: a container_name or a fixed host port would make the second replica fail to start.
        check(
            "container_name" not in svc and not svc.get("ports"),
            f"{name}: no container_name and no host port (scales with --scale {name}=N)",
        )
    check(be["environment"] == wk["environment"], "worker: exactly the backend's environment")
    be_cmd, wk_cmd = " ".join(be.get("command") or []), " ".join(wk.get("command") or [])
    check(
        "rag_backend serve" in be_cmd or "rag-backend serve" in be_cmd,
        f"backend: runs the API ({be_cmd or 'the image default'})",
    )
    check(
        "rag_backend worker" in wk_cmd or "rag-backend worker" in wk_cmd,
        f"worker: runs `rag-backend worker` ({wk_cmd})",
    )
    check("/health" in health_test(be) and "8000" in health_test(be), "backend: healthcheck on :8000/health")
    check(
        "/health" in health_test(wk) and "WORKER_PORT" in health_test(wk) and "8002" in health_test(wk),
        "worker: healthcheck on :WORKER_PORT (8002)/health",
    )
    # postgres: the catalog and the job queue of every replica.
    pg = s["postgres"]
    check(
        re.fullmatch(r"postgres:\d+\.\d+(-alpine|-bookworm|-trixie)?", pg["image"]) is not None,
        f"postgres: the official image pinned to a minor version ({pg['image']})",
    )
    check(
        any(v.get("type") == "volume" for v in mounts(pg, "/var/lib/postgresql/data")),
        "postgres: data on a named volume",
    )
    pg_health = health_test(pg)
    check(
        "pg_isready" in pg_health and "-h 127.0.0.1" in pg_health,
        "postgres: healthcheck pg_isready over TCP (not the init-time socket-only server)",
    )
    pg_env = pg.get("environment") or {}
    check(
        all(pg_env.get(k) for k in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB")) and limits(pg).get("memory"),
        "postgres: user, password and database set; memory limit",
    )
    url = be["environment"].get("DATABASE_URL", "")
    check(
        url == f"postgresql://{pg_env.get('POSTGRES_USER')}:{pg_env.get('POSTGRES_PASSWORD')}@postgres:5432/"
        f"{pg_env.get('POSTGRES_DB')}",
        "backend and worker: DATABASE_URL built from postgres' own user, password and database",
    )
    # frontend
    check(fe.get("build", {}).get("context", "").endswith("/frontend"), "frontend: built from frontend/")
    check(
        any(p.get("target") == 3000 and str(p.get("published")) == "3000" for p in fe.get("ports") or []),
        "frontend: port 3000",
    )
    check(
        any(p.get("target") == 8000 and str(p.get("published")) == "8000" for p in fe.get("ports") or []),
        "frontend: the backend's API published on port 8000 (nginx, balanced over the replicas)",
    )
    check(fe["environment"].get("BACKEND_URL") == "http://backend:8000", "frontend: BACKEND_URL=http://backend:8000")
    check(
        (fe.get("depends_on") or {}).get("backend", {}).get("condition") == "service_healthy",
        "frontend: waits for a healthy backend",
    )
    # redis
    r = s["redis"]
    cmd = " ".join(r.get("command") or [])
    check(
        "--maxmemory " in cmd and "allkeys-lru" in cmd and "--appendonly no" in cmd,
        f"redis: a cache with maxmemory + allkeys-lru, AOF off ({r['image']})",
    )
    check(
        "redis-cli ping" in health_test(r) and limits(r).get("memory"),
        "redis: healthcheck redis-cli ping, memory limit",
    )
    # qdrant
    q = s["qdrant"]
    check(image_version(q["image"]) >= (1, 19), f"qdrant: server >= 1.19 ({q['image']})")
    check(any(v.get("type") == "volume" for v in mounts(q, "/qdrant/storage")), "qdrant: storage on a named volume")
    check(
        "/readyz" in health_test(q) and "/dev/tcp/" in health_test(q), "qdrant: healthcheck GET /readyz (bash, no curl)"
    )
    check("QDRANT__SERVICE__API_KEY" not in q.get("environment", {}), "qdrant: no empty API key by default")


def check_profiles(s: dict) -> None:
    o = s["ollama"]
    check(any(v.get("type") == "volume" for v in mounts(o, "/root/.ollama")), "ollama: models on a named volume")
    entry = mounts(o, "/opt/stack/ollama-entrypoint.sh")
    check(
        len(entry) == 1
        and entry[0].get("read_only")
        and Path(entry[0]["source"]).resolve() == ROOT / "deploy/ollama/entrypoint.sh"
        and o.get("entrypoint", [])[-1] == "/opt/stack/ollama-entrypoint.sh",
        "ollama: entrypoint deploy/ollama/entrypoint.sh, mounted read-only",
    )
    check("ollama-entrypoint.sh health" in health_test(o), "ollama: healthcheck (server answers, models present)")
    check(limits(o).get("memory") and limits(o).get("cpus"), "ollama: memory and CPU limits")
    check(
        o["environment"].get("OLLAMA_PULL_MODELS") and "OLLAMA_MODELS" not in o["environment"],
        "ollama: models to pull in OLLAMA_PULL_MODELS (OLLAMA_MODELS is Ollama's own directory setting)",
    )
    p, g = s["prometheus"], s["grafana"]
    prom_cfg = mounts(p, "/etc/prometheus/prometheus.yml")
    check(len(prom_cfg) == 1 and Path(prom_cfg[0]["source"]).resolve() == PROMETHEUS, "prometheus: config mounted")
    check(any(v.get("type") == "volume" for v in mounts(p, "/prometheus")), "prometheus: TSDB on a named volume")
    prov = mounts(g, "/etc/grafana/provisioning")
    dash = mounts(g, "/etc/grafana/dashboards")
    check(
        len(prov) == 1
        and Path(prov[0]["source"]).resolve() == GRAFANA_PROVISIONING
        and len(dash) == 1
        and Path(dash[0]["source"]).resolve() == DASHBOARDS,
        "grafana: provisioning and dashboards mounted",
    )
    e, f = s["elasticsearch"], s["filebeat"]
    ee = e["environment"]
    check(
        ee.get("discovery.type") == "single-node"
        and "-Xmx" in (ee.get("ES_JAVA_OPTS") or "")
        and limits(e).get("memory"),
        "elasticsearch: single node, heap set, memory limit",
    )
    check(
        any(v.get("type") == "volume" for v in mounts(e, "/usr/share/elasticsearch/data")),
        "elasticsearch: data on a named volume",
    )
    logs = mounts(f, "/var/lib/docker/containers")
    check(len(logs) == 1 and logs[0].get("read_only") is True, "filebeat: Docker's container logs mounted read-only")
    fb_cfg = mounts(f, "/usr/share/filebeat/filebeat.yml")
    check(len(fb_cfg) == 1 and Path(fb_cfg[0]["source"]).resolve() == FILEBEAT, "filebeat: config mounted")
    check(e["image"].rsplit(":", 1)[-1] == f["image"].rsplit(":", 1)[-1], "filebeat and elasticsearch: same version")
    check(
        (f.get("depends_on") or {}).get("elasticsearch", {}).get("condition") == "service_healthy",
        "filebeat: waits for a healthy elasticsearch",
    )
    col, jaeger = s["otel-collector"], s["jaeger"]
    col_cfg = mounts(col, "/etc/otelcol/config.yaml")
    check(len(col_cfg) == 1 and Path(col_cfg[0]["source"]).resolve() == TRACING, "otel-collector: config mounted")
    exporters = str(yaml.safe_load(TRACING.read_text())["exporters"])
    check("jaeger:4317" in exporters, "otel-collector: exports to jaeger:4317")
    check(
        all(str(p.get("host_ip")) == "127.0.0.1" for p in jaeger.get("ports") or []) and limits(jaeger).get("memory"),
        "jaeger: UI on 127.0.0.1 only, memory limit",
    )
    for name in ("ml-api", "backend", "worker"):
        check("OTEL_EXPORTER_OTLP_ENDPOINT" in s[name]["environment"], f"{name}: OTEL_EXPORTER_OTLP_ENDPOINT passed")


def check_settings(s: dict, example: str) -> None:
    for name, path, svcs in (
        ("ml-api", ML_SETTINGS, ["ml-api"]),
        ("backend", BACKEND_SETTINGS, ["backend", "worker"]),
    ):
        fields = settings_fields(path)
        check(len(fields) > 10, f"{name}: {len(fields)} settings in {path.relative_to(ROOT)}")
        for svc in svcs:
            missing = [f for f in fields if f not in s[svc]["environment"]]
            check(
                not missing,
                f"{svc}: compose passes every setting of {name}"
                + (f" (missing: {', '.join(missing)})" if missing else ""),
            )
        undocumented = [f for f in fields if not re.search(rf"^(# ?)?{f}=", example, re.M)]
        check(
            not undocumented,
            f"{name}: .env.example documents every setting"
            + (f" (missing: {', '.join(undocumented)})" if undocumented else ""),
        )
    stray = [
        str(p.relative_to(ROOT)) for p in (ROOT / d / "models" for d in ("ml-api", "backend", "frontend")) if p.exists()
    ]
    check(not stray, "one models/ directory, at the root" + (f" (duplicates: {stray})" if stray else ""))


def main() -> int:
    directory, example_path = Path(sys.argv[1]), Path(sys.argv[2])
    example = example_path.read_text()
    keys = ["default", *PROFILES, "+".join(PROFILES)]
    configs = {
        k: (
            json.loads((directory / f"gpu-{k}.json").read_text()),
            json.loads((directory / f"cpu-{k}.json").read_text()),
        )
        for k in keys
    }
    check_variants(configs, example)
    everything = configs["+".join(PROFILES)][0]["services"]
    check_services(everything, example)
    check_profiles(everything)
    check_settings(everything, example)
    with_example = json.loads((directory / "example-all.json").read_text())["services"]
    for name in SCALED:
        env = with_example[name]["environment"]
        wrong = {k: env.get(k) for k, v in BACKEND_WIRING.items() if env.get(k) != v}
        tokenizer = env.get("CHUNK_TOKENIZER", "")
        check(
            not wrong and tokenizer.removeprefix("/").startswith("models/"),
            f"with {example_path.name} as .env the {name} is still wired to the stack (tokenizer {tokenizer})"
            + (f" (wrong: {wrong})" if wrong else ""),
        )
    check(
        with_example["ml-api"]["environment"].get("MODELS_DIR") == "/models",
        f"with {example_path.name} as .env ml-api still reads /models",
    )
    check_nginx()
    main_image = everything["qdrant"]["image"]
    for file, label in (("qdrant-cluster.json", "no .env"), ("qdrant-cluster-example.json", example_path.name)):
        check_qdrant_cluster(json.loads((directory / file).read_text())["services"], label, main_image)
    check_monitoring()
    check_logging()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
