"""deploy/k8s as a cluster would get it: each overlay rendered by Debian bookworm's kubectl 1.20 (its built-in
kustomize v2.0.3, from `make k8s-tools`), then checked for what the manifests promise: probes, resources and
non-root pods, the GPU only in the gpu overlay, autoscalers and disruption budgets that find their pods, Services
and Ingress that reach real ports, and configuration that is made of real, documented settings.
kubernetes-validate --strict checks the schemas in scripts/check-deploy.sh."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["gpu", "cpu"]
KUBECTL = Path(os.environ.get("KUBECTL", ROOT / ".tools" / "k8s" / "usr" / "bin" / "kubectl"))
NAMESPACE = "rag"
ENV_EXAMPLE = ROOT / ".env.example"
# Which service's settings each image reads, and the Dockerfile whose USER its pods must run as.
IMAGES = {
    "ml-api": ("ml-api/ml_api/core/config.py", "ml-api/Dockerfile"),
    "rag-backend": ("backend/rag_backend/core/config.py", "backend/Dockerfile"),
    "rag-frontend": (None, "frontend/Dockerfile"),
}
Doc = dict[str, Any]


def kubectl_kustomize(directory: Path) -> list[Doc]:
    if not KUBECTL.is_file():
        pytest.fail(f"{KUBECTL} is missing: `make k8s-tools` unpacks Debian's kubectl there (the one CI renders with)")
    res = subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, f"kubectl kustomize {directory}: {res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


@cache
def rendered(overlay: str) -> tuple[Doc, ...]:
    return tuple(kubectl_kustomize(K8S / "overlays" / overlay))


def of_kind(docs: tuple[Doc, ...] | list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: tuple[Doc, ...] | list[Doc], kind: str, name: str) -> Doc:
    [doc] = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return doc


def pod_spec(deployment: Doc) -> Doc:
    return deployment["spec"]["template"]["spec"]


def container(deployment: Doc) -> Doc:
    [c] = pod_spec(deployment)["containers"]
    return c


def image_name(c: Doc) -> str:
    """The image's own name, without registry path and tag: which service it is."""
    return c["image"].rsplit("/", 1)[-1].split(":", 1)[0]


def selects(selector: dict[str, str], deployment: Doc) -> bool:
    """Whether a label selector matches the deployment's pods."""
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def secret_data(secret: Doc) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def environment(docs: tuple[Doc, ...], c: Doc) -> dict[str, str | None]:
    """Every variable the container gets, with its value where the manifests give one (None: from a Secret that
    is not ours, or a field ref)."""
    env: dict[str, str | None] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env |= named(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            env |= secret_data(named(docs, "Secret", source["secretRef"]["name"]))
    for var in c.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        ours = ref and [s for s in of_kind(docs, "Secret") if s["metadata"]["name"] == ref["name"]]
        env[var["name"]] = secret_data(ours[0])[ref["key"]] if ours else var.get("value")
    return env


def settings_of(config: str) -> set[str]:
    """The env var names of a pydantic Settings class: its upper-cased field names."""
    text = (ROOT / config).read_text()
    body = text.split("class Settings(BaseSettings):", 1)[1]
    return {m.group(1).upper() for m in re.finditer(r"^    ([a-z][a-z0-9_]*): ", body, re.M)}


def frontend_variables() -> set[str]:
    """What the page's image reads: the variables its nginx template is rendered with."""
    m = re.search(r'NGINX_ENVSUBST_FILTER="\^\(([A-Z_|]+)\)\$"', (ROOT / "frontend/Dockerfile").read_text())
    assert m, "frontend/Dockerfile: NGINX_ENVSUBST_FILTER not found"
    return set(m.group(1).split("|"))


def dockerfile_user(dockerfile: str) -> int:
    users = re.findall(r"^USER (\d+)", (ROOT / dockerfile).read_text(), re.M)
    assert users, f"{dockerfile}: no numeric USER"
    return int(users[-1])


def documented(name: str) -> bool:
    return re.search(rf"^(# ?)?{re.escape(name)}=", ENV_EXAMPLE.read_text(), re.M) is not None


def ports_of(c: Doc) -> dict[str | int, int]:
    """A container's ports by name and by number."""
    found: dict[str | int, int] = {}
    for p in c.get("ports", []):
        found[p["containerPort"]] = p["containerPort"]
        if "name" in p:
            found[p["name"]] = p["containerPort"]
    return found


@pytest.fixture(params=OVERLAYS)
def docs(request: pytest.FixtureRequest) -> tuple[Doc, ...]:
    return rendered(request.param)


def test_the_four_services_and_their_objects(docs: tuple[Doc, ...]) -> None:
    names = {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
    assert names == {"ml-api", "backend", "worker", "frontend"}
    assert {d["metadata"]["name"] for d in of_kind(docs, "Service")} == names
    assert {d["metadata"]["name"] for d in of_kind(docs, "PodDisruptionBudget")} == names
    assert len(of_kind(docs, "Ingress")) == 1


def test_everything_lands_in_one_namespace(docs: tuple[Doc, ...]) -> None:
    [ns] = of_kind(docs, "Namespace")
    assert ns["metadata"]["name"] == NAMESPACE
    # Our pods meet `restricted` (test below); the dependencies' charts run here too and need `baseline`.
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == NAMESPACE, (d["kind"], d["metadata"]["name"])


def test_every_deployment_has_probes(docs: tuple[Doc, ...]) -> None:
    """Liveness on /health (ml-api: /live, which never queues behind clients), readiness on /ready (the page's
    nginx answers /healthz itself), each on a port the container opens."""
    expected = {
        "ml-api": ("/live", "/ready"),
        "backend": ("/health", "/ready"),
        "worker": ("/health", "/ready"),
        "frontend": ("/healthz", "/healthz"),
    }
    for d in of_kind(docs, "Deployment"):
        c, name = container(d), d["metadata"]["name"]
        live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
        assert (live["path"], ready["path"]) == expected[name], name
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in c:
                assert c[probe]["httpGet"]["port"] in ports_of(c), (name, probe)


def test_every_deployment_has_resources_and_runs_locked_down(docs: tuple[Doc, ...]) -> None:
    for d in of_kind(docs, "Deployment"):
        spec, c, name = pod_spec(d), container(d), d["metadata"]["name"]
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
        assert "memory" in c["resources"]["limits"], name
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["seccompProfile"]["type"] == "RuntimeDefault", name
        assert ctx["runAsUser"] == dockerfile_user(IMAGES[image_name(c)][1]), name
        cctx = c["securityContext"]
        assert cctx["allowPrivilegeEscalation"] is False and cctx["capabilities"]["drop"] == ["ALL"], name
        assert cctx["readOnlyRootFilesystem"] is True, name
        # Service links would put BACKEND_PORT=tcp://... and WORKER_PORT=tcp://... into the environment: both are
        # settings of the backend.
        assert spec["enableServiceLinks"] is False, name


def test_every_deployment_tells_prometheus_where_its_metrics_are(docs: tuple[Doc, ...]) -> None:
    for d in of_kind(docs, "Deployment"):
        notes, c, name = d["spec"]["template"]["metadata"]["annotations"], container(d), d["metadata"]["name"]
        assert notes["prometheus.io/scrape"] in ("true", "false"), name
        if name == "frontend":
            assert notes["prometheus.io/scrape"] == "false"  # nginx exports no metrics
            continue
        assert notes["prometheus.io/scrape"] == "true", name
        assert int(notes["prometheus.io/port"]) in ports_of(c).values() and notes["prometheus.io/path"] == "/metrics"


def test_only_the_gpu_overlay_asks_for_a_gpu() -> None:
    gpu = container(named(rendered("gpu"), "Deployment", "ml-api"))
    assert gpu["resources"]["requests"]["nvidia.com/gpu"] == gpu["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert environment(rendered("gpu"), gpu)["DEVICE"] == "cuda"
    for d in of_kind(rendered("cpu"), "Deployment"):
        assert "nvidia.com/gpu" not in yaml.safe_dump(d), d["metadata"]["name"]
    cpu = container(named(rendered("cpu"), "Deployment", "ml-api"))
    assert environment(rendered("cpu"), cpu)["DEVICE"] == "cpu"
    # ONNX Runtime would otherwise start a thread per core of the node, not of the pod's share.
    assert int(environment(rendered("cpu"), cpu)["ORT_INTRA_OP_THREADS"]) == int(cpu["resources"]["requests"]["cpu"])


def test_autoscalers_target_backend_worker_and_ml_api(docs: tuple[Doc, ...]) -> None:
    deployments = {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"backend", "worker", "ml-api"}
    for target, hpa in hpas.items():
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["apiVersion"], ref["kind"]) == ("apps/v1", "Deployment") and target in deployments
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"], target
    for target in ("backend", "worker"):
        [metric] = hpas[target]["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"


def test_ml_api_scales_on_its_queue_on_gpus_and_on_cpu_otherwise() -> None:
    [queue] = named(rendered("gpu"), "HorizontalPodAutoscaler", "ml-api")["spec"]["metrics"]
    assert queue["type"] == "Pods" and queue["pods"]["target"]["type"] == "AverageValue"
    # The gauge ml-api really exports, under the name the prometheus-adapter rule of deploy/k8s/README.md serves.
    name = queue["pods"]["metric"]["name"]
    assert re.search(rf'Gauge\(\s*"{name}"', (ROOT / "ml-api/ml_api/core/metrics.py").read_text()), name
    assert f"seriesQuery: '{name}{{" in (K8S / "README.md").read_text()
    [cpu] = named(rendered("cpu"), "HorizontalPodAutoscaler", "ml-api")["spec"]["metrics"]
    assert cpu["type"] == "Resource" and cpu["resource"]["name"] == "cpu"


def test_disruption_budgets_select_existing_pods(docs: tuple[Doc, ...]) -> None:
    deployments = of_kind(docs, "Deployment")
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [d for d in deployments if selects(selector, d)]
        assert [d["metadata"]["name"] for d in matched] == [pdb["metadata"]["name"]], selector
        # One replica of ml-api (one GPU) must stay drainable: a budget that allows no eviction would block it.
        assert "maxUnavailable" in pdb["spec"] or pdb["spec"]["minAvailable"] < matched[0]["spec"]["replicas"]


def test_services_select_existing_pods_and_ports(docs: tuple[Doc, ...]) -> None:
    deployments = of_kind(docs, "Deployment")
    for svc in of_kind(docs, "Service"):
        matched = [d for d in deployments if selects(svc["spec"]["selector"], d)]
        assert len(matched) == 1, svc["metadata"]["name"]
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports_of(container(matched[0])), (svc["metadata"]["name"], port)


def test_ingress_sends_the_page_and_the_api_to_real_service_ports(docs: tuple[Doc, ...]) -> None:
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    [ingress] = of_kind(docs, "Ingress")
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            svc = services[backend["name"]]
            port = backend["port"]
            by_name = {p.get("name") for p in svc["spec"]["ports"]} - {None}
            assert port.get("name") in by_name or port.get("number") in [p["port"] for p in svc["spec"]["ports"]]
            routes[path["path"]] = backend["name"]
    # The page calls /api/... on its own origin (frontend/src/api).
    assert routes == {"/": "frontend", "/api": "backend"}
    assert "fetch('/api/" in (ROOT / "frontend/src/api/ask.ts").read_text()


def test_every_variable_a_container_gets_is_a_documented_setting_of_its_service(docs: tuple[Doc, ...]) -> None:
    """ConfigMap and Secret keys included: a typo or a setting that does not exist would be silently ignored."""
    for d in of_kind(docs, "Deployment"):
        c = container(d)
        config, _ = IMAGES[image_name(c)]
        known = settings_of(config) if config else frontend_variables()
        env = environment(docs, c)
        assert env, d["metadata"]["name"]
        for name in env:
            assert name in known, f"{d['metadata']['name']}: {name} is not a setting of {config or 'the page'}"
            assert documented(name), f"{name} is not documented in .env.example"
    for doc in of_kind(docs, "ConfigMap") + of_kind(docs, "Secret"):
        for key in doc.get("data") or {}:
            assert documented(key), f"{doc['metadata']['name']}: {key} is not documented in .env.example"


def test_backend_serves_without_ingesting_and_the_worker_ingests(docs: tuple[Doc, ...]) -> None:
    backend, worker = (container(named(docs, "Deployment", n)) for n in ("backend", "worker"))
    # `rag-backend serve` / `rag-backend worker`: the image runs the package from source, without the script.
    assert backend["command"] == ["python", "-m", "rag_backend", "serve"]
    assert worker["command"] == ["python", "-m", "rag_backend", "worker"]
    assert 'add_parser("worker"' in (ROOT / "backend/rag_backend/cli.py").read_text()
    assert backend["image"] == worker["image"]
    api_env, worker_env = environment(docs, backend), environment(docs, worker)
    assert api_env["INGEST_WORKERS"] == "0"
    for env in (api_env, worker_env):
        # Several processes: a Qdrant server (the embedded engine belongs to one process) and PostgreSQL.
        assert env["QDRANT_URL"] and (env["DATABASE_URL"] or "").startswith("postgresql://")
    assert {k: v for k, v in api_env.items() if k != "INGEST_WORKERS"} == {
        k: v for k, v in worker_env.items() if k != "INGEST_WORKERS"
    }, "the API and the workers must share catalog, store and models"
    assert int(worker_env["WORKER_PORT"]) == container(named(docs, "Deployment", "worker"))["ports"][0]["containerPort"]
    assert api_env["EMBED_API_URL"] == api_env["RERANK_API_URL"] == "http://ml-api:8001"


def test_the_page_finds_the_backend_service(docs: tuple[Doc, ...]) -> None:
    """nginx resolves BACKEND_URL through NGINX_RESOLVER, without resolv.conf's search domains: the full name."""
    env = environment(docs, container(named(docs, "Deployment", "frontend")))
    m = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)", env["BACKEND_URL"] or "")
    assert m, env["BACKEND_URL"]
    service = named(docs, "Service", m.group(1))
    assert m.group(2) == NAMESPACE and int(m.group(3)) in [p["port"] for p in service["spec"]["ports"]]
    assert env["NGINX_RESOLVER"] == "kube-dns.kube-system.svc.cluster.local"


def test_models_come_read_only_from_one_claim(docs: tuple[Doc, ...]) -> None:
    claims = {p["metadata"]["name"] for p in of_kind(docs, "PersistentVolumeClaim")}
    for name in ("ml-api", "backend", "worker"):
        d = named(docs, "Deployment", name)
        [volume] = [v for v in pod_spec(d)["volumes"] if "persistentVolumeClaim" in v]
        assert volume["persistentVolumeClaim"]["claimName"] in claims and volume["persistentVolumeClaim"]["readOnly"]
        [mount] = [m for m in container(d)["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["mountPath"] == "/models" and mount["readOnly"] is True
    # The tool that fills it mounts the same claim in the same namespace.
    [loader] = yaml.safe_load_all((K8S / "tools/models-loader.yaml").read_text())
    assert loader["metadata"]["namespace"] == NAMESPACE
    assert [v["persistentVolumeClaim"]["claimName"] for v in loader["spec"]["volumes"]] == sorted(claims)
    assert loader["spec"]["securityContext"]["runAsUser"] == dockerfile_user("backend/Dockerfile")


def test_images_come_from_the_overlay(docs: tuple[Doc, ...]) -> None:
    for d in of_kind(docs, "Deployment"):
        image = container(d)["image"]
        assert "/" in image and ":" in image.rsplit("/", 1)[-1], image
        assert image_name(container(d)) in IMAGES


def test_kustomizations_keep_to_what_kubectl_1_20_understands() -> None:
    """Its kustomize (v2.0.3) refuses unknown fields, so rendering proves most of it; the deprecated spellings it
    needs are kept on purpose (newer kubectl still reads them, with a warning)."""
    allowed = {
        "namespace", "commonLabels", "resources", "bases", "configMapGenerator", "secretGenerator",
        "patchesStrategicMerge", "patchesJson6902", "images", "generatorOptions",
    }  # fmt: skip
    for path in K8S.rglob("kustomization.yaml"):
        assert set(yaml.safe_load(path.read_text())) <= allowed, path


def test_real_secrets_replace_the_placeholders_as_the_readme_says(tmp_path: Path) -> None:
    """deploy/k8s/README.md#secrets: an overlay of your own, a generator with behavior: replace from an env file
    kept out of git; and, with an external secret manager, its Secret named in the three references."""
    base = os.path.relpath(K8S / "overlays" / "gpu", tmp_path / "mine")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "secrets.env").write_text(
        "DATABASE_URL=postgresql://rag:s3cret@rag-pg-rw:5432/rag\nML_API_KEY=k1\nAPI_KEY=k2\n"
    )
    (mine / "kustomization.yaml").write_text(
        f"namespace: rag\nbases:\n- {base}\nsecretGenerator:\n- name: rag-secrets\n  behavior: replace\n"
        "  type: Opaque\n  env: secrets.env\n"
    )
    docs = kubectl_kustomize(mine)
    [secret] = of_kind(docs, "Secret")
    assert secret_data(secret)["DATABASE_URL"] == "postgresql://rag:s3cret@rag-pg-rw:5432/rag"
    for name in ("backend", "worker"):
        assert environment(tuple(docs), container(named(docs, "Deployment", name)))["API_KEY"] == "k2"
    assert environment(tuple(docs), container(named(docs, "Deployment", "ml-api")))["API_KEY"] == "k1"

    managed = tmp_path / "managed"
    managed.mkdir()
    (managed / "kustomization.yaml").write_text(
        f"namespace: rag\nbases:\n- {base}\npatchesJson6902:\n"
        + "".join(
            f"- target: {{group: apps, version: v1, kind: Deployment, name: {n}}}\n  path: {p}\n"
            for n, p in (("backend", "envfrom.yaml"), ("worker", "envfrom.yaml"), ("ml-api", "ml-api.yaml"))
        )
    )
    replace = "- op: replace\n  path: {}\n  value: rag-secrets-managed\n"
    (managed / "envfrom.yaml").write_text(replace.format("/spec/template/spec/containers/0/envFrom/1/secretRef/name"))
    (managed / "ml-api.yaml").write_text(
        replace.format("/spec/template/spec/containers/0/env/0/valueFrom/secretKeyRef/name")
    )
    docs = kubectl_kustomize(managed)
    refs = re.findall(r"name: (rag-secrets\S*)", yaml.safe_dump_all(of_kind(docs, "Deployment")))
    assert refs == ["rag-secrets-managed"] * 3, refs
