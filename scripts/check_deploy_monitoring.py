"""The monitoring and logging checks: Prometheus targets, Grafana provisioning, the dashboard's queries against the
metrics the services export, and Filebeat."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from check_deploy_common import ROOT, check

METRIC_SOURCES = [ROOT / "backend/rag_backend/core/metrics.py", ROOT / "ml-api/ml_api/core/metrics.py"]
PROMETHEUS = ROOT / "deploy/monitoring/prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "deploy/monitoring/grafana/provisioning"
DASHBOARDS = ROOT / "deploy/monitoring/grafana/dashboards"
FILEBEAT = ROOT / "deploy/logging/filebeat.yml"
# Dashboard panels the issue asks for: (what, words one panel title must contain).
REQUIRED_PANELS = [
    ("request rate", "request rate"),
    ("latency p50/p95", "p50 / p95"),
    ("queue", "queue"),
    ("batch size", "batch size"),
    ("cache hit rate", "cache hit rate"),
    ("ingestion jobs", "ingestion jobs"),
]


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
