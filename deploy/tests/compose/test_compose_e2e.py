"""The CPU compose stack (docker-compose.yml + docker-compose.cpu.yml) on a real engine, exercised from outside the
containers: through the page's nginx (FRONTEND_PORT, and the API door BACKEND_PORT it also serves) and ml-api's
port, with compose and the engine's CLI for restarts, scaling and inspection. Run by `make test-compose`, which
builds the images, brings the stack up, runs this module and takes the stack down with its volumes.

The tests run in file order and share the stack: documents uploaded first are looked for again after restarts,
scaling and a down/up.

Where there is no registry (CI) the base images are test-only stand-ins (deploy/bases): the postgres, redis and
nginx behaviour exercised is Debian's PostgreSQL 15, Redis 7 and nginx 1.22, and `qdrant` is the project's REST
stand-in (devharness.qdrant_standin, qdrant-client's local mode), not Qdrant. What a real Qdrant would prove that
this does not: its HNSW search and payload indexes under load, its gRPC port, concurrent writers, its own storage
format across restarts and upgrades, snapshots, and the cluster override.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import pytest
from compose_stack import SERVICES, Stack, docs, http, stack, wait_for

pytestmark = pytest.mark.skipif(os.environ.get("RAG_COMPOSE_E2E") != "1", reason="needs the stack: make test-compose")
__all__ = ["http", "stack"]  # the fixtures, imported for pytest to find

INGEST_TIMEOUT_S = 600
HEALTH_TIMEOUT_S = 600
# Sizes our own layers may add to their official bases (docs/deployment.md#images): the images' budgets on official
# bases (backend 480 MB since accounts brought Authlib, cryptography and argon2-cffi, frontend 60 MB) less those
# bases (python:3.11-slim-bookworm about 125 MB, nginx-unprivileged:alpine about 50 MB).
ADDED_BUDGET_MB = {"backend": 480 - 125, "frontend": 60 - 50}

FILES = {
    # name: (bytes, a question only it answers)
    "solar.md": (docs.SOLAR.encode(), "How do photovoltaic cells turn sunlight into electricity?"),
    "volcano.pdf": (docs.pdf_bytes(docs.VOLCANO_PAGES), "Why are some volcanic eruptions explosive?"),
    "bread.docx": (docs.docx_bytes("Sourdough", docs.BREAD_PARAGRAPHS), "How does sourdough rise without yeast?"),
    "whales.html": (docs.WHALES_HTML.encode(), "Which whales sing songs during the breeding season?"),
}


def upload(http: httpx.Client, base: str, files: dict[str, bytes]) -> list[str]:
    r = http.post(f"{base}/api/documents", files=[("files", (name, data)) for name, data in files.items()])
    assert r.status_code == 202, f"upload through {base}: {r.status_code} {r.text}"
    items = r.json()["documents"]
    assert all(i["status"] != "rejected" for i in items), items
    return [i["id"] for i in items]


def documents(http: httpx.Client, base: str) -> dict[str, dict[str, Any]]:
    r = http.get(f"{base}/api/documents", params={"limit": 1000})
    r.raise_for_status()
    return {d["id"]: d for d in r.json()["documents"]}


def wait_ready(http: httpx.Client, base: str, ids: list[str], timeout: float = INGEST_TIMEOUT_S) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        docs_now = documents(http, base)
        missing = [i for i in ids if i not in docs_now]
        assert not missing, f"documents lost: {missing}"
        failed = {i: docs_now[i]["error"] for i in ids if docs_now[i]["status"] == "failed"}
        assert not failed, f"documents failed: {failed}"
        pending = {docs_now[i]["filename"]: docs_now[i]["status"] for i in ids if docs_now[i]["status"] != "ready"}
        return None if pending else docs_now

    try:
        return wait_for(f"{len(ids)} documents ready", probe, timeout, every=3)
    except AssertionError:
        raise


def top_source(http: httpx.Client, base: str, question: str) -> tuple[str, dict[str, Any]]:
    r = http.post(f"{base}/api/query", json={"query": question, "top_k": 3, "rerank": True})
    assert r.status_code == 200, f"query through {base}: {r.status_code} {r.text}"
    body = r.json()
    assert body["results"], f"no results for {question!r}"
    first = body["results"][0]
    assert first["rerank_score"] is not None, "the query was not reranked"
    return first["source"], body


def assert_found(http: httpx.Client, base: str) -> None:
    for name, (_, question) in FILES.items():
        source, body = top_source(http, base, question)
        assert source == name, f"{question!r} found {source}, not {name}: {json.dumps(body['results'][:3])[:800]}"


@pytest.fixture(scope="module")
def corpus(stack: Stack, http: httpx.Client) -> dict[str, Any]:
    """The four formats, two through the page's nginx and two through the API port, all ready."""
    stack.wait_healthy(timeout=HEALTH_TIMEOUT_S)
    names = list(FILES)
    ids = upload(http, stack.page, {n: FILES[n][0] for n in names[:2]})
    ids += upload(http, stack.api, {n: FILES[n][0] for n in names[2:]})
    ready = wait_ready(http, stack.page, ids)
    return {"ids": ids, "docs": {i: ready[i] for i in ids}}


def test_every_service_healthy(stack: Stack) -> None:
    rows = stack.wait_healthy(timeout=HEALTH_TIMEOUT_S)
    for row in rows:
        if row["Service"] in ("ml-api", "backend", "worker", "postgres", "redis", "qdrant"):
            assert row.get("Health") == "healthy", row  # each has a healthcheck, run by the engine or the script


def test_ready_names_its_parts(stack: Stack, http: httpx.Client) -> None:
    for base in (stack.api, stack.page):
        r = wait_for(f"{base}/ready 200", lambda b=base: (x := http.get(f"{b}/ready")).status_code == 200 and x, 300)
        parts = r.json()["components"]
        assert parts["catalog"]["kind"] == "postgres" and parts["catalog"]["ok"], parts["catalog"]
        assert parts["cache"]["kind"] == "redis" and parts["cache"]["ok"], parts["cache"]
        assert parts["store"]["kind"] == "qdrant" and parts["store"]["ok"], parts["store"]
        assert parts["embeddings"]["ok"] and parts["reranker"]["ok"], parts
        assert parts["reranker"]["kind"] == "ml-api"
    assert http.get(f"{stack.ml}/health").status_code == 200  # ml-api's own port, published on 127.0.0.1


def test_non_root_and_read_only(stack: Stack) -> None:
    for service in ("ml-api", "backend", "worker", "frontend", "qdrant"):
        uid = stack.compose("exec", "-T", service, "id", "-u").strip()
        assert uid not in ("", "0"), f"{service} runs as uid {uid!r}"
    for service in ("ml-api", "backend", "worker"):
        (container,) = [c["Name"] for c in stack.containers() if c["Service"] == service]
        inspected = json.loads(stack.engine_cmd("container", "inspect", container))[0]
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True, f"{service}: root filesystem not read-only"
        out = stack.compose("exec", "-T", service, "sh", "-c", "touch /home/app/x 2>&1 || echo refused", check=False)
        assert "refused" in out and "Read-only file system" in out, f"{service} wrote its root filesystem: {out}"
        stack.compose("exec", "-T", service, "sh", "-c", "touch /tmp/x && rm /tmp/x")  # the tmpfs is writable


def test_formats_indexed_and_found_through_both_doors(stack: Stack, http: httpx.Client, corpus: dict) -> None:
    formats = {d["filename"]: d["format"] for d in corpus["docs"].values()}
    assert set(formats) == set(FILES), formats
    assert all(d["chunks"] > 0 and d["chunks_done"] == d["chunks"] for d in corpus["docs"].values()), corpus
    assert_found(http, stack.page)
    assert_found(http, stack.api)


def test_streamed_answer_through_the_page(stack: Stack, http: httpx.Client, corpus: dict) -> None:
    question = FILES["volcano.pdf"][1]
    events: list[tuple[str, Any]] = []
    with http.stream("POST", f"{stack.page}/api/query/stream", json={"query": question, "generate": True}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event or "", json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[0] == "results" and kinds[-1] == "done", kinds
    assert "error" not in kinds, events
    assert events[0][1]["results"][0]["source"] == "volcano.pdf"
    answer = "".join(d.get("text", "") for k, d in events if k == "token")
    assert answer.strip(), f"no answer tokens: {kinds}"


def test_restarts_during_ingestion_lose_nothing(stack: Stack, http: httpx.Client, corpus: dict) -> None:
    batch = {f"report-{i}.md": docs.long_text(f"topic{i}", 60).encode() for i in range(6)}
    ids = upload(http, stack.page, batch)
    time.sleep(2)  # the worker has claimed jobs and is embedding
    for service in ("worker", "ml-api", "backend"):
        stack.compose("restart", "-t", "30", service, timeout=300)
    stack.wait_healthy(timeout=HEALTH_TIMEOUT_S)
    ready = wait_ready(http, stack.page, ids + corpus["ids"], timeout=900)
    assert all(ready[i]["chunks_done"] == ready[i]["chunks"] > 0 for i in ids), [ready[i] for i in ids]
    source, _ = top_source(http, stack.page, "What was recorded for sample 17 of the topic3 report?")
    assert source.startswith("report-"), source
    corpus["ids"] += ids


def test_scaled_backend_and_worker_share_one_catalog(stack: Stack, http: httpx.Client, corpus: dict) -> None:
    # --no-recreate: only the new replicas start (seen here: Compose through Podman 4.3's API otherwise recreates every
    # container on each `up`, which costs minutes and proves nothing more).
    up = ("up", "-d", "--wait", "--wait-timeout", "600", "--no-build", "--pull", "never", "--no-recreate")
    stack.compose(*up, "--scale", "backend=2", "--scale", "worker=2", timeout=900)
    try:
        rows = stack.wait_healthy(timeout=HEALTH_TIMEOUT_S)
        assert sum(r["Service"] == "backend" for r in rows) == 2 and sum(r["Service"] == "worker" for r in rows) == 2
        # Each API replica reads the same catalog; nginx answers from either (re-resolving the name every 10 s).
        totals = set()  # each replica asked with its own operator key (the stack runs AUTH_MODE=users)
        for index in ("1", "2"):
            out = stack.compose(
                "exec", "-T", "--index", index, "backend", "python", "-c",
                "import json, os, urllib.request; print(json.load(urllib.request.urlopen(urllib.request.Request("
                "'http://127.0.0.1:8000/api/documents?limit=1000', headers={'X-API-Key': os.environ['API_KEY']})))"
                "['total'])",
            )  # fmt: skip
            totals.add(int(out.strip()))
        assert totals == {len(corpus["ids"])}, totals
        new = upload(http, stack.page, {"scaled.md": b"# Tides\n\nThe moon's gravity raises two tidal bulges."})
        wait_ready(http, stack.page, new)
        for _ in range(10):
            assert len(documents(http, stack.page)) == len(corpus["ids"]) + 1
        source, _ = top_source(http, stack.page, "What raises the tidal bulges?")
        assert source == "scaled.md"
        corpus["ids"] += new
    finally:
        stack.compose(*up, "--scale", "backend=1", "--scale", "worker=1", timeout=900)


def test_down_and_up_keep_the_documents(stack: Stack, http: httpx.Client, corpus: dict) -> None:
    before = documents(http, stack.page)
    stack.compose("down", timeout=300)
    assert not [c for c in stack.containers() if c["Service"] in SERVICES]
    stack.compose("up", "-d", "--wait", "--wait-timeout", "900", "--no-build", "--pull", "never", timeout=1200)
    stack.wait_healthy(timeout=HEALTH_TIMEOUT_S)
    after = wait_for("the documents listed again", lambda: documents(http, stack.page), 300)
    assert set(after) == set(before), (sorted(before), sorted(after))
    for i, d in before.items():
        assert (after[i]["status"], after[i]["chunks"], after[i]["size"]) == (d["status"], d["chunks"], d["size"])
    assert_found(http, stack.page)


def test_slim_variant_serves_the_default_slot(stack: Stack, http: httpx.Client, corpus: dict) -> None:
    up = ("up", "-d", "--wait", "--wait-timeout", "900", "--no-build", "--pull", "never", "ml-api")
    stack.compose(*up, timeout=1200, ML_API_VARIANT="slim")
    try:
        (row,) = [c for c in stack.containers() if c["Service"] == "ml-api"]
        assert row["Image"].endswith("cpu-slim"), row
        stack.wait_healthy(timeout=HEALTH_TIMEOUT_S)
        probe = "import importlib.util as u; print(u.find_spec('torch'))"
        torch = stack.compose("exec", "-T", "ml-api", "python", "-c", probe)
        assert torch.strip() == "None", "the slim image carries torch"
        r = http.post(
            f"{stack.ml}/rerank",
            json={"query": "what is panda?", "texts": ["Paris is in France.", "The giant panda is a bear."]},
        )
        assert r.status_code == 200, r.text
        ranked = sorted(r.json(), key=lambda x: -x["score"])
        assert ranked[0]["index"] == 1, ranked
        assert_found(http, stack.page)  # the backend reranks through the slim ml-api
    finally:
        stack.compose(*up, timeout=1200)


def test_image_sizes(stack: Stack) -> None:
    """Printed for the record; our own layers (image less its base) within the budgets on official bases."""
    images = {
        "backend": ("rag-backend:latest", "docker.io/library/python:3.11.16-slim-bookworm"),
        "ml-api cpu-full": ("ml-api:latest-cpu-full", "docker.io/library/python:3.11.16-slim-bookworm"),
        "ml-api cpu-slim": ("ml-api:latest-cpu-slim", "docker.io/library/python:3.11.16-slim-bookworm"),
        "frontend": ("rag-frontend:latest", "docker.io/nginxinc/nginx-unprivileged:1.28.0-alpine"),
    }
    lines = []
    for label, (image, base) in images.items():
        size, base_size = (int(stack.engine_cmd("image", "inspect", "--format", "{{.Size}}", i)) for i in (image, base))
        added = (size - base_size) / 1e6
        lines.append(f"{label:16} {size / 1e6:7.0f} MB  ({added:.0f} MB over its base)")
        if label in ADDED_BUDGET_MB:
            assert added <= ADDED_BUDGET_MB[label], f"{label}: {added:.0f} MB over its base"
    print("\n" + "\n".join(lines))
