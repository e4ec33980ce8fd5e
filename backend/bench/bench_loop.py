"""Event-loop benchmark: does any blocking work reach the backend's event loop?

A blocked loop shows first on the routes that do no inference: /health, the document and the collection listings
answer in about a millisecond when the loop is free, so their p99 is how long the loop was held. They are probed
(one request at a time, in a loop) in three phases of one run, against one backend process on embedded defaults
(SQLite catalog, the embedded Qdrant engine, in-process cache, INGEST_WORKERS slots in the same process):
- idle: nothing else happens (the reference);
- ingest: 8 large documents (SciFact abstracts joined, ~60 chunks each) are parsed, chunked, embedded and indexed;
- delete: a collection of 200 indexed documents is deleted: from DELETE /api/collections/{name} until it is gone,
  and at least --delete-window-s.
Queries (hybrid + rerank, a new text each time: a cache miss) are probed beside them on their own connection; they
wait for ml-api, which ingestion keeps busy, so they are reported, not judged. Goal: the no-inference routes' p99
under 50 ms in every phase. Each figure is printed with its ratio to the idle phase of the same run.

ml-api and the backend run as subprocesses on free ports. `--backend-python` runs another checkout's backend (its
venv's python) for a before/after comparison. Results: a table on stdout and JSON in bench-results/, whose path is
the last line printed. Run with `make bench-loop` (BENCH_ARGS="--help" for the knobs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from bench_backend import ML_API_PYTHON, MODELS, REPO, ml_api_env, pct
from devharness import free_port, host_info, serve, write_results

LIGHT = ("/health", "/api/documents", "/api/collections")
GOAL_P99_MS = 50.0


def scifact(shared: Path, n: int) -> list[str]:
    texts = []
    with (shared / "data" / "scifact" / "corpus.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            texts.append(f"{d['title']}\n\n{d['text']}")
            if len(texts) == n:
                break
    return texts


class Probes:
    """Two client threads: the no-inference routes in turn, and queries; each sample lands in the current phase."""

    def __init__(self, url: str, pause_s: float) -> None:
        self.url, self.pause_s = url, pause_s
        self.phase = ""
        self.samples: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.errors: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._light, daemon=True), threading.Thread(target=self._query)]

    def __enter__(self) -> Probes:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _record(self, route: str, started: float, response: httpx.Response) -> None:
        ms = (time.perf_counter() - started) * 1000
        if self.phase:
            self.samples[self.phase][route].append(ms)
            if response.status_code >= 400:
                self.errors[f"{self.phase} {route} {response.status_code}"] += 1

    def _light(self) -> None:
        params = {"/api/documents": {"collection": "probe", "limit": 50}}
        with httpx.Client(base_url=self.url, timeout=60) as c:
            while not self._stop.is_set():
                for route in LIGHT:
                    t = time.perf_counter()
                    r = c.get(route, params=params.get(route))
                    self._record(route, t, r)
                    time.sleep(self.pause_s)

    def _query(self) -> None:
        n = 0
        with httpx.Client(base_url=self.url, timeout=120) as c:
            while not self._stop.is_set():
                n += 1
                body = {"query": f"How do cells respond to stress? ({n})", "collection": "probe", "top_k": 5,
                        "candidates": 10}  # fmt: skip
                t = time.perf_counter()
                r = c.post("/api/query", json=body)
                self._record("query", t, r)
                time.sleep(self.pause_s * 5)


def upload(c: httpx.Client, collection: str, files: list[tuple[str, str]], per_request: int = 20) -> list[str]:
    ids = []
    for i in range(0, len(files), per_request):
        parts = [("files", (name, text.encode(), "text/plain")) for name, text in files[i : i + per_request]]
        r = c.post("/api/documents", files=parts, data={"collection": collection})
        r.raise_for_status()
        ids += [d["id"] for d in r.json()["documents"]]
    return ids


def wait_indexed(c: httpx.Client, collection: str, n: int, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        coll = next((x for x in c.get("/api/collections").json() if x["name"] == collection), None)
        if coll and coll["ready"] + coll["failed"] >= n:
            if coll["failed"]:
                raise SystemExit(f"{coll['failed']} documents of {collection} failed to index")
            return
        time.sleep(0.2)
    raise SystemExit(f"{collection} not indexed after {timeout} s")


def run_phases(url: str, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    probe_docs = [(f"probe-{i}.txt", t) for i, t in enumerate(texts[: args.probe_docs])]
    doomed = [(f"doomed-{i}.txt", t) for i, t in enumerate(texts[: args.delete_docs])]
    per = args.abstracts_per_doc
    large = [(f"large-{i}.txt", "\n\n".join(texts[i * per : (i + 1) * per])) for i in range(args.ingest_docs)]
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=600) as c:
        print(f"setup: {len(probe_docs)} documents to probe, {len(doomed)} to delete ...", flush=True)
        upload(c, "probe", probe_docs)
        upload(c, "doomed", doomed)
        wait_indexed(c, "probe", len(probe_docs))
        wait_indexed(c, "doomed", len(doomed))
        c.post("/api/query", json={"query": "warm-up", "collection": "probe"}).raise_for_status()
        with Probes(url, args.pause_ms / 1000) as probes:
            print(f"idle: {args.idle_s:g} s ...", flush=True)
            probes.phase = "idle"
            time.sleep(args.idle_s)

            print(f"ingest: {len(large)} documents of {per} abstracts each ...", flush=True)
            probes.phase = "ingest"
            t0 = time.perf_counter()
            upload(c, "ingest", large)
            wait_indexed(c, "ingest", len(large))
            out["ingest_s"] = round(time.perf_counter() - t0, 2)

            print(f"delete: a collection of {len(doomed)} documents ...", flush=True)
            probes.phase = "delete"
            t0 = time.perf_counter()
            r = c.delete("/api/collections/doomed")
            out["delete_answer"] = {"status": r.status_code, "ms": round((time.perf_counter() - t0) * 1000, 1)}
            while c.post("/api/collections", json={"name": "doomed"}).status_code == 409:  # still being deleted
                time.sleep(0.05)
            out["delete_s"] = round(time.perf_counter() - t0, 2)
            time.sleep(max(0.0, args.delete_window_s - (time.perf_counter() - t0)))  # a quick job: probe on
            probes.phase = ""
            time.sleep(0.5)  # the probes' requests in flight land in their phase
        out["samples"] = {ph: {rt: v for rt, v in routes.items()} for ph, routes in probes.samples.items()}
        out["errors"] = dict(probes.errors)
    return out


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    idle = raw["samples"]["idle"]
    for phase, routes in raw["samples"].items():
        table[phase] = {}
        for route, values in routes.items():
            ref = idle.get(route, [])
            row = {"n": len(values), "p50_ms": pct(values, 50), "p99_ms": pct(values, 99), "max_ms": pct(values, 100)}
            if ref:
                row["p50_vs_idle"] = round(row["p50_ms"] / pct(ref, 50), 2)
                row["p99_vs_idle"] = round(row["p99_ms"] / pct(ref, 99), 2)
            table[phase][route] = row
    light = [table[ph][rt]["p99_ms"] for ph in table for rt in LIGHT if rt in table[ph]]
    return {"phases": table, "no_inference_p99_max_ms": max(light), "goal_met": max(light) < GOAL_P99_MS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--idle-s", type=float, default=20.0)
    p.add_argument("--delete-window-s", type=float, default=5.0, help="the delete phase lasts at least this long")
    p.add_argument("--probe-docs", type=int, default=20)
    p.add_argument("--ingest-docs", type=int, default=8)
    p.add_argument("--abstracts-per-doc", type=int, default=25)
    p.add_argument("--delete-docs", type=int, default=200)
    p.add_argument("--pause-ms", type=float, default=10.0, help="between a probe's requests")
    p.add_argument("--ingest-workers", type=int, default=4)
    p.add_argument("--backend-python", type=Path, default=Path(sys.executable),
                   help="the backend's interpreter (another checkout's venv: a before/after comparison)")  # fmt: skip
    p.add_argument("--shared-dir", type=Path, default=Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")))
    p.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    args = p.parse_args()
    texts = scifact(args.shared_dir.resolve(), max(args.delete_docs, args.ingest_docs * args.abstracts_per_doc))

    tmp = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    ml_port, be_port = free_port(), free_port()
    ml_url, be_url = f"http://127.0.0.1:{ml_port}", f"http://127.0.0.1:{be_port}"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    ml_env = ml_api_env(ml_port)
    be_env = base | {
        "BACKEND_PORT": str(be_port), "BACKEND_HOST": "127.0.0.1", "DATA_DIR": str(tmp / "data"),
        "EMBED_API_URL": ml_url, "RERANK_API_URL": ml_url, "INGEST_WORKERS": str(args.ingest_workers),
        "CHUNK_TOKENIZER": str(MODELS / "all-MiniLM-L6-v2" / "tokenizer.json"), "LOG_LEVEL": "WARNING",
        "LLM_PROVIDERS": "",
    }  # fmt: skip
    results: dict[str, Any] = {"machine": host_info(), "backend_python": str(args.backend_python)}
    ml_cmd = [str(ML_API_PYTHON), "-m", "ml_api", "serve"]
    be_cmd = [str(args.backend_python), "-m", "rag_backend", "serve"]
    with (
        serve(ml_cmd, ml_env, tmp / "ml.log", url=ml_url, cwd=REPO, timeout=240, name="ml-api"),
        serve(be_cmd, be_env, tmp / "backend.log", url=be_url, cwd=tmp, timeout=240, name="backend"),
    ):
        raw = run_phases(be_url, texts, args)
    shutil.rmtree(tmp, ignore_errors=True)
    results |= {k: v for k, v in raw.items() if k != "samples"} | summarise(raw)

    print()
    print(
        f"{'phase':8} {'route':18} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50/idle':>9} {'p99/idle':>9}"
    )
    for phase, routes in results["phases"].items():
        for route in (*LIGHT, "query"):
            if (r := routes.get(route)) is not None:
                print(f"{phase:8} {route:18} {r['n']:>5} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8} "
                      f"{r.get('p50_vs_idle', ''):>9} {r.get('p99_vs_idle', ''):>9}")  # fmt: skip
    d = results["delete_answer"]
    print(f"ingest of {args.ingest_docs} documents: {results['ingest_s']} s; DELETE of {args.delete_docs} documents "
          f"answered {d['status']} in {d['ms']} ms, gone after {results['delete_s']} s")  # fmt: skip
    print(f"no-inference p99, worst phase: {results['no_inference_p99_max_ms']} ms   goal < {GOAL_P99_MS:g} ms: "
          f"{'met' if results['goal_met'] else 'NOT met'}; errors: {results['errors'] or 'none'}")  # fmt: skip
    print(write_results(args.out_dir, "loop", results))


if __name__ == "__main__":
    main()
