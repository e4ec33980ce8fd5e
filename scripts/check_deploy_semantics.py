"""What the deployment files promise, checked on the configurations Compose resolved (called by check-deploy.sh).

Usage: check_deploy_semantics.py DIR ENV_EXAMPLE, where DIR holds `docker compose config --format json` output as
{gpu,cpu}-{default,ollama,monitoring,logging,ollama+monitoring+logging}.json (no .env), example-all.json (every
profile, ENV_EXAMPLE as .env) and qdrant-cluster.json / qdrant-cluster-example.json (docker-compose.qdrant-cluster.yml
on top, without and with ENV_EXAMPLE). Prints one `  ok  ...` or `  FAIL ...` line per check and exits 1 if any
failed. Needs PyYAML (check-deploy.sh installs it into .tools).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = {"ml-api", "backend", "worker", "frontend", "postgres", "redis", "qdrant"}
# `docker compose up --scale backend=3 --scale worker=4`: nothing in them may name or bind one container.
SCALED = ("backend", "worker")
PROFILES = {"ollama": {"ollama"}, "monitoring": {"prometheus", "grafana"}, "logging": {"elasticsearch", "filebeat"}}
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
METRIC_SOURCES = [ROOT / "backend/rag_backend/core/metrics.py", ROOT / "ml-api/ml_api/core/metrics.py"]
PROMETHEUS = ROOT / "deploy/monitoring/prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy/monitoring/grafana/provisioning"
DASHBOARDS = ROOT / "deploy/monitoring/grafana/dashboards"
FILEBEAT = ROOT / "deploy/logging/filebeat.yml"
NGINX_TEMPLATE = ROOT / "frontend/nginx/default.conf.template"
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
# The 3-node Qdrant override: what the backend and the worker create collections with.
CLUSTER_COLLECTIONS = {
    "QDRANT_URL": "http://qdrant-cluster:6333",
    "QDRANT_SHARD_NUMBER": "6",
    "QDRANT_REPLICATION_FACTOR": "2",
    "QDRANT_WRITE_CONSISTENCY_FACTOR": "1",
}
QDRANT_NODES = ("qdrant", "qdrant-2", "qdrant-3")
# Dashboard panels the issue asks for: (what, words one panel title must contain).
REQUIRED_PANELS = [
    ("request rate", "request rate"),
    ("latency p50/p95", "p50 / p95"),
    ("queue", "queue"),
    ("batch size", "batch size"),
    ("cache hit rate", "cache hit rate"),
    ("ingestion jobs", "ingestion jobs"),
]

failures: list[str] = []


def check(cond: object, text: str) -> None:
    print(f"  {'ok ' if cond else 'FAIL'} {text}")
    if not cond:
        failures.append(text)


def devices(svc: dict) -> list:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []


def limits(svc: dict) -> dict:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}


def health_test(svc: dict) -> str:
    test = (svc.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


def mounts(svc: dict, target: str) -> list[dict]:
    return [v for v in svc.get("volumes") or [] if v.get("target") == target]


def settings_fields(path: Path) -> list[str]:
    """Every field of the Settings class, upper-cased: each is an environment variable."""
    tree = ast.parse(path.read_text())
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "Settings")
    return [n.target.id.upper() for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]


def exported_metrics() -> set[str]:
    """Names the services expose, from their prometheus_client declarations (suffixes as the client adds them)."""
    names: set[str] = set()
    for path in METRIC_SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            kind, name = node.func.id, first.value
            if kind == "Counter":
                names.add(name if name.endswith("_total") else name + "_total")
            elif kind == "Gauge":
                names.add(name)
            elif kind in ("Histogram", "Summary"):
                names.update({name + "_sum", name + "_count"} | ({name + "_bucket"} if kind == "Histogram" else set()))
    return names


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
        check(all(gs[n].get("image") == cs[n].get("image") for n in gs), f"[{key}] both variants run the same images")


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
    check("/health" in health_test(ml), "ml-api: healthcheck probes /health")
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
        any(
            p.get("target") == 8000 and str(p.get("published")) == "8000" and p.get("host_ip") == "127.0.0.1"
            for p in fe.get("ports") or []
        ),
        "frontend: the backend's API published on 127.0.0.1:8000 (nginx, balanced over the replicas)",
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


def check_monitoring() -> None:
    prom = yaml.safe_load(PROMETHEUS.read_text())
    targets = set()
    for job in prom.get("scrape_configs", []):
        for sc in job.get("static_configs", []):
            targets.update(sc.get("targets", []))
        for dns in job.get("dns_sd_configs", []):
            targets.update(f"{n}:{dns.get('port')}" for n in dns.get("names", []))
    check(
        {"ml-api:8001", "backend:8000", "worker:8002"} <= targets,
        f"prometheus scrapes ml-api:8001, backend:8000 and worker:8002 ({sorted(targets)})",
    )
    # Every replica: a DNS A query on the service name returns them all (a static target would hit one).
    by_dns = {
        f"{n}:{dns.get('port')}"
        for job in prom.get("scrape_configs", [])
        for dns in job.get("dns_sd_configs", [])
        if dns.get("type", "A") == "A"
        for n in dns.get("names", [])
    }
    check(
        {"ml-api:8001", "backend:8000", "worker:8002"} <= by_dns,
        "prometheus: ml-api, backend and worker found by DNS (dns_sd_configs), so every replica is scraped",
    )

    datasources = [
        d
        for f in sorted((GRAFANA_PROVISIONING / "datasources").glob("*.y*ml"))
        for d in yaml.safe_load(f.read_text()).get("datasources", [])
    ]
    prom_ds = [d for d in datasources if d.get("type") == "prometheus"]
    check(
        len(prom_ds) == 1 and prom_ds[0].get("url") == "http://prometheus:9090" and prom_ds[0].get("uid"),
        "grafana: Prometheus datasource provisioned (http://prometheus:9090)",
    )
    uid = prom_ds[0].get("uid") if prom_ds else None
    providers = [
        p
        for f in sorted((GRAFANA_PROVISIONING / "dashboards").glob("*.y*ml"))
        for p in yaml.safe_load(f.read_text()).get("providers", [])
    ]
    check(
        any((p.get("options") or {}).get("path") == "/etc/grafana/dashboards" for p in providers),
        "grafana: dashboards provisioned from /etc/grafana/dashboards",
    )

    known = exported_metrics()
    check(len(known) > 20, f"{len(known)} metric series declared in the services' metrics.py")
    exprs: list[str] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        try:
            dash = json.loads(path.read_text())
        except ValueError as exc:
            check(False, f"{path.name}: valid JSON ({exc})")
            continue
        panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
        titles = [p.get("title", "").lower() for p in panels]
        missing = [what for what, words in REQUIRED_PANELS if not any(words in t for t in titles)]
        check(
            not missing,
            f"{path.name}: valid JSON, {len(panels)} panels" + (f" (missing panels: {missing})" if missing else ""),
        )
        bad: list[str] = []
        for panel in panels:
            targets = panel.get("targets") or []
            if not targets:
                bad.append(f"{panel.get('title')}: no query")
            for t in targets:
                expr = t.get("expr", "")
                exprs.append(expr)
                used = set(re.findall(r"\b(?:rag|mlapi)_[a-z0-9_]+", expr))
                unknown = used - known
                if not used or unknown:
                    bad.append(f"{panel.get('title')}: {sorted(unknown) or 'no metric'}")
                if (t.get("datasource") or panel.get("datasource") or {}).get("uid") != uid:
                    bad.append(f"{panel.get('title')}: datasource is not uid {uid}")
        check(
            not bad,
            f"{path.name}: {len(exprs)} queries, each on exported metrics and the provisioned datasource"
            + (f" ({'; '.join(bad)})" if bad else ""),
        )
    promtool = shutil.which("promtool")
    if promtool:
        with tempfile.TemporaryDirectory() as d:
            rules = Path(d) / "rules.yml"
            rules.write_text(
                json.dumps(
                    {
                        "groups": [
                            {
                                "name": "dashboard",
                                "rules": [
                                    {"record": f"dashboard_query_{i}", "expr": e.replace("$__rate_interval", "5m")}
                                    for i, e in enumerate(exprs)
                                ],
                            }
                        ]
                    }
                )
            )
            cfg = subprocess.run([promtool, "check", "config", "--syntax-only", str(PROMETHEUS)], capture_output=True)
            rls = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
            check(
                cfg.returncode == 0 and rls.returncode == 0,
                "promtool: prometheus.yml valid, every dashboard query parses as PromQL"
                + ("" if rls.returncode == 0 else f" ({rls.stdout.strip()} {rls.stderr.strip()})"),
            )
    else:
        print("  skip promtool not installed: PromQL syntax of the dashboard not checked (apt-get install prometheus)")


def nginx_parse(text: str) -> list[tuple[str, list[str], list]]:
    """nginx's configuration as (directive, arguments, block) tuples; ${VAR} placeholders of the template stay words."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|\$\{[A-Z0-9_]+\}|[{};]|[^\s{};"\']+', re.sub(r"(?m)#.*$", "", text))
    pos = 0

    def block() -> list[tuple[str, list[str], list]]:
        nonlocal pos
        items: list[tuple[str, list[str], list]] = []
        words: list[str] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == ";":
                items.append((words[0], words[1:], []))
                words = []
            elif tok == "{":
                items.append((words[0], words[1:], block()))
                words = []
            elif tok == "}":
                return items
            else:
                words.append(tok.strip("\"'"))
        return items

    return block()


def nginx_find(items: list, name: str) -> list[tuple[str, list[str], list]]:
    """Every directive called `name`, at any depth."""
    found = []
    for item in items:
        if item[0] == name:
            found.append(item)
        found += nginx_find(item[2], name)
    return found


def nginx_seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    return int(m.group(1)) * units[m.group(2) or "s"] if m else 0


def check_nginx() -> None:
    """The page's nginx balances over the backend's replicas and follows --scale: a resolver plus a variable in
    every proxy_pass (resolved at request time), the page's paths on 3000 and the whole API, unbuffered, on 8000."""
    text = NGINX_TEMPLATE.read_text()
    conf = nginx_parse(text)
    resolvers = nginx_find(conf, "resolver")
    valid = [nginx_seconds(a.split("=", 1)[1]) for r in resolvers for a in r[1] if a.startswith("valid=")]
    check(
        len(resolvers) == 1 and resolvers[0][1][0] == "${NGINX_RESOLVER}" and valid and valid[0] <= 30,
        f"nginx: resolver ${{NGINX_RESOLVER}} (Docker's DNS), answers cached {valid[0] if valid else '?'} s at most",
    )
    passes = nginx_find(conf, "proxy_pass")
    check(
        passes and all(p[1] == ["$backend"] for p in passes) and not nginx_find(conf, "upstream"),
        f"nginx: all {len(passes)} proxy_pass use a variable ($backend), no static upstream block",
    )
    servers = {a[0]: srv for srv in nginx_find(conf, "server") for a in [d[1] for d in srv[2] if d[0] == "listen"]}
    for port in ("3000", "8000"):
        srv = servers.get(port)
        sets = [d[1] for d in (srv[2] if srv else []) if d[0] == "set"]
        check(
            srv is not None and ["$backend", "${BACKEND_URL}"] in sets,
            f"nginx: server on {port} sets $backend from BACKEND_URL",
        )
    page = servers.get("3000", ("", [], []))[2]
    paths = {" ".join(d[1]): d[2] for d in page if d[0] == "location"}
    expected = ["= /api/query/stream", "= /api/documents", "/api/", "= /ready", "= /health", "= /healthz"]
    check(all(p in paths for p in expected), "nginx: the page's server keeps its /api, /ready and /health paths")
    stream = {d[0]: d[1] for d in paths.get("= /api/query/stream", [])}
    upload = {d[0]: d[1] for d in paths.get("= /api/documents", [])}
    check(
        stream.get("proxy_buffering") == ["off"] and upload.get("proxy_request_buffering") == ["off"],
        "nginx: answer stream unbuffered, uploads streamed (page)",
    )
    api = servers.get("8000", ("", [], []))[2]
    root = {d[0]: d[1] for loc in api if loc[0] == "location" and loc[1] == ["/"] for d in loc[2]}
    check(
        root.get("proxy_pass") == ["$backend"]
        and root.get("proxy_buffering") == ["off"]
        and root.get("proxy_request_buffering") == ["off"]
        and nginx_seconds((root.get("proxy_read_timeout") or ["0"])[0]) >= 3600,
        "nginx: server on 8000 proxies every path, SSE-safe (no buffering, read timeout >= 1h)",
    )
    # client_max_body_size where both servers inherit it (http level), or in each.
    top_level = [d for d in conf if d[0] == "client_max_body_size"]
    each = all(any(d[0] == "client_max_body_size" for d in srv[2]) for srv in servers.values())
    check(
        (top_level and top_level[0][1] == ["${CLIENT_MAX_BODY_SIZE}"]) or each,
        "nginx: both servers limit bodies to CLIENT_MAX_BODY_SIZE (from MAX_REQUEST_MB)",
    )
    used = set(re.findall(r"\$\{([A-Z0-9_]+)\}", text))
    dockerfile = (ROOT / "frontend/Dockerfile").read_text()
    filt = re.search(r'NGINX_ENVSUBST_FILTER="\^\(([^)]*)\)\$"', dockerfile)
    allowed = set(filt.group(1).split("|")) if filt else set()
    check(
        used and used <= allowed,
        f"nginx: the template's variables ({', '.join(sorted(used))}) are all rendered by the image's envsubst filter",
    )


def check_qdrant_cluster(s: dict, label: str, main_image: str) -> None:
    """docker-compose.qdrant-cluster.yml: three nodes of one image, one volume each, node 1 announced with --uri and
    the others bootstrapped from it; the backend and the worker create collections spread and replicated over them."""
    nodes = [s.get(n) for n in QDRANT_NODES]
    if not all(nodes):
        check(False, f"[{label}] qdrant cluster: services {', '.join(QDRANT_NODES)}")
        return
    env = [n.get("environment") or {} for n in nodes]
    check(
        all(e.get("QDRANT__CLUSTER__ENABLED") == "true" for e in env) and all(n["image"] == main_image for n in nodes),
        f"[{label}] qdrant cluster: 3 nodes of {main_image}, QDRANT__CLUSTER__ENABLED=true",
    )
    storage = [tuple(v.get("source") for v in mounts(n, "/qdrant/storage") if v.get("type") == "volume") for n in nodes]
    check(
        all(len(v) == 1 for v in storage) and len(set(storage)) == 3,
        f"[{label}] qdrant cluster: a named storage volume per node ({', '.join(v[0] for v in storage if v)})",
    )
    commands = [n.get("command") or [] for n in nodes]
    first, others = commands[0], commands[1:]

    def arg(cmd: list[str], flag: str) -> str | None:
        return cmd[cmd.index(flag) + 1] if flag in cmd and cmd.index(flag) + 1 < len(cmd) else None

    check(
        arg(first, "--uri") == "http://qdrant:6335" and "--bootstrap" not in first,
        f"[{label}] qdrant cluster: node 1 started with --uri http://qdrant:6335",
    )
    check(
        all(arg(c, "--bootstrap") == "http://qdrant:6335" for c in others),
        f"[{label}] qdrant cluster: nodes 2 and 3 started with --bootstrap http://qdrant:6335",
    )
    published = [p for n in nodes for p in n.get("ports") or [] if p.get("target") == 6335]
    check(not published, f"[{label}] qdrant cluster: the peer-to-peer port 6335 is not published")
    check(
        all("/readyz" in health_test(n) for n in nodes)
        and all((n.get("depends_on") or {}).get("qdrant", {}).get("condition") == "service_healthy" for n in nodes[1:]),
        f"[{label}] qdrant cluster: every node health-checked, nodes 2 and 3 wait for node 1",
    )
    host = CLUSTER_COLLECTIONS["QDRANT_URL"].split("//", 1)[1].split(":", 1)[0]
    check(
        all(host in ((n.get("networks") or {}).get("default") or {}).get("aliases", []) for n in nodes),
        f"[{label}] qdrant cluster: every node answers as {host} (the backend's QDRANT_URL)",
    )
    for name in SCALED:
        svc_env = s[name]["environment"]
        wrong = {k: svc_env.get(k) for k, v in CLUSTER_COLLECTIONS.items() if svc_env.get(k) != v}
        deps = s[name].get("depends_on") or {}
        check(
            not wrong and all((deps.get(n) or {}).get("condition") == "service_healthy" for n in QDRANT_NODES),
            f"[{label}] qdrant cluster: {name} waits for every node and creates collections with "
            + ", ".join(f"{k}={v}" for k, v in CLUSTER_COLLECTIONS.items() if k != "QDRANT_URL")
            + (f" (wrong: {wrong})" if wrong else ""),
        )
    rf = int(CLUSTER_COLLECTIONS["QDRANT_REPLICATION_FACTOR"])
    wcf = int(CLUSTER_COLLECTIONS["QDRANT_WRITE_CONSISTENCY_FACTOR"])
    check(
        1 < rf <= len(nodes) and wcf < rf,
        f"[{label}] qdrant cluster: {rf} copies of each shard on {len(nodes)} nodes and writes acknowledged by {wcf}, "
        "so one node down loses no data and stops no write",
    )


def check_logging() -> None:
    fb = yaml.safe_load(FILEBEAT.read_text())
    inputs = fb.get("filebeat.inputs") or []
    paths = [p for i in inputs for p in i.get("paths", [])]
    check(any(p.startswith("/var/lib/docker/containers/") for p in paths), "filebeat: reads Docker's json-file logs")
    parsers = [next(iter(p)) for i in inputs for p in i.get("parsers", [])]
    procs = [next(iter(p)) for i in inputs for p in i.get("processors", [])] + [
        next(iter(p)) for p in fb.get("processors", [])
    ]
    check(
        "container" in parsers and "decode_json_fields" in procs,
        "filebeat: unwraps Docker's envelope and decodes the services' JSON lines",
    )
    hosts = (fb.get("output.elasticsearch") or {}).get("hosts") or []
    check(any("elasticsearch:9200" in h for h in hosts), "filebeat: ships to elasticsearch:9200")


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
