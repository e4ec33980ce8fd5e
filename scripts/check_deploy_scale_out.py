"""The scale-out checks (issue 13): the page's nginx balancing over the backend's replicas, and the 3-node Qdrant
override (docker-compose.qdrant-cluster.yml)."""

from __future__ import annotations

import re

from check_deploy_common import ROOT, check, health_test, mounts

# `docker compose up --scale backend=3 --scale worker=4`: nothing in them may name or bind one container.
SCALED = ("backend", "worker")
NGINX_TEMPLATE = ROOT / "frontend/nginx/default.conf.template"
QDRANT_NODES = ("qdrant", "qdrant-2", "qdrant-3")
# The 3-node Qdrant override: what the backend and the worker create collections with.
CLUSTER_COLLECTIONS = {
    "QDRANT_URL": "http://qdrant-cluster:6333",
    "QDRANT_SHARD_NUMBER": "6",
    "QDRANT_REPLICATION_FACTOR": "2",
    "QDRANT_WRITE_CONSISTENCY_FACTOR": "1",
}


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
