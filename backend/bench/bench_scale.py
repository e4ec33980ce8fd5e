"""Scale-out benchmark: ingestion chunks/s with 1, 2 and 4 `rag-backend worker` processes against one ml-api.

One ml-api is started once and warmed up. Then, for each worker count N, a fresh deployment as docs/deployment.md
describes it: a PostgreSQL database of the run's own (DATABASE_URL: catalog, job queue and uploads in flight), a
fresh Qdrant REST stand-in in memory (devharness.qdrant_standin: no Qdrant server runs on these machines and the
embedded engine belongs to one process), one `rag-backend serve` with INGEST_WORKERS=0 and N `rag-backend worker
--concurrency C`. The same documents are uploaded through the API (SciFact abstracts, offline, several per file
so that each file is a few KB and several chunks long) and timed from the first upload until every document is
`ready`; chunks/s = chunks stored / those seconds, with the ratio to N=1 measured in the same run.

Beside it: CPU seconds per process kind during the timed part (ml-api, API, workers, stand-in, the PostgreSQL
backends serving this run's database), the stand-in's busy_s (its store serves one request at a time: the share of
the wall time it was busy shows how close it came to being the bottleneck), and the CPU other programs took. On a
machine with few cores ml-api's CPU inference is the bottleneck, so the ratio then shows what the workers cost and
how well they coordinate, not the scaling a GPU ml-api gives. Results: a table on stdout and JSON in
bench-results/, whose path is the last line printed. Run with `make bench-scale` (BENCH_ARGS="--help").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from bench_backend import ml_api_env
from devharness import free_port, host_info, serve, spawn, wait_healthy, write_results
from devharness.cpu import machine_cpu_s, process_cpu_s
from devharness.postgres import scratch_database
from devharness.qdrant_standin import start_standin

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
ML_API_PYTHON = REPO / "ml-api" / ".venv" / "bin" / "python"


def scifact_files(shared: Path, n_docs: int, per_doc: int) -> list[tuple[str, bytes]]:
    """`n_docs` text files of `per_doc` consecutive SciFact abstracts each (title + text, blank lines between)."""
    abstracts = []
    with (shared / "data" / "scifact" / "corpus.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            abstracts.append(f"{d['title']}\n\n{d['text']}")
            if len(abstracts) == n_docs * per_doc:
                break
    if len(abstracts) < n_docs * per_doc:
        sys.exit(f"SciFact has only {len(abstracts)} abstracts; ask for fewer --docs or --abstracts-per-doc")
    return [(f"doc-{i:03d}.txt", "\n\n".join(abstracts[i * per_doc : (i + 1) * per_doc]).encode())
            for i in range(n_docs)]  # fmt: skip


def postgres_pids(admin_url: str, db_url: str) -> list[int]:
    """The server processes serving the run's database (pools keep them for the run's length)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (db_url.rsplit("/", 1)[1],))
        return [r[0] for r in rows]


def ingest(api: str, files: list[tuple[str, bytes]], per_request: int, timeout: float) -> dict[str, Any]:
    """Upload `files`, wait until all are finished (the collection's counters), then count the chunks stored."""
    with httpx.Client(base_url=api, timeout=600) as c:
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        for i in range(0, len(files), per_request):
            batch = [("files", (name, data, "text/plain")) for name, data in files[i : i + per_request]]
            c.post("/api/documents", files=batch, data={"collection": "bench"}).raise_for_status()
        while True:
            coll = next((x for x in c.get("/api/collections").json() if x["name"] == "bench"), None)
            if coll and coll["ready"] + coll["failed"] >= len(files):
                break
            if time.monotonic() > deadline:  # a worker that died leaves its jobs to a lease expiry, not forever
                raise TimeoutError(f"not all {len(files)} documents finished within {timeout:g} s: {coll}")
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        rows = c.get("/api/documents", params={"collection": "bench", "limit": 1000}).json()["documents"]
    chunks = sum(d["chunks"] for d in rows if d["status"] == "ready")
    failed = sum(d["status"] == "failed" for d in rows)
    return {"documents": len(rows), "failed": failed, "chunks": chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 2)}  # fmt: skip


def run_workers(n: int, args: argparse.Namespace, ml: Any, files: list[tuple[str, bytes]], tmp: Path) -> dict:
    """One fresh deployment with `n` workers; returns its figures."""
    run_dir = tmp / f"workers-{n}"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    with scratch_database(args.postgres_url, "rag_bench") as db_url, contextlib.ExitStack() as stack:
        standin = start_standin(run_dir / "standin.log", env=base)
        stack.callback(standin.stop, 20)
        shared = base | {
            "DATABASE_URL": db_url, "QDRANT_URL": standin.url, "EMBED_API_URL": ml.url, "RERANK_API_URL": ml.url,
            "CHUNK_TOKENIZER": str(MODELS / "all-MiniLM-L6-v2" / "tokenizer.json"), "BACKEND_HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING", "LLM_PROVIDERS": "", "INGEST_POLL_S": str(args.poll_s),
        }  # fmt: skip
        api_port = free_port()
        api_env = shared | {"DATA_DIR": str(run_dir / "api"), "BACKEND_PORT": str(api_port), "INGEST_WORKERS": "0"}
        api_cmd = [sys.executable, "-m", "rag_backend", "serve"]
        api = stack.enter_context(
            serve(api_cmd, api_env, run_dir / "api.log", url=f"http://127.0.0.1:{api_port}", cwd=REPO, name="api")
        )
        workers = []
        for i in range(n):  # spawned together, then waited for: they start in parallel
            port = free_port()
            env = shared | {"DATA_DIR": str(run_dir / f"worker-{i}"), "WORKER_PORT": str(port)}
            cmd = [sys.executable, "-m", "rag_backend", "worker", "--concurrency", str(args.concurrency)]
            w = spawn(cmd, env, run_dir / f"worker-{i}.log", cwd=REPO, url=f"http://127.0.0.1:{port}", name=f"w{i}")
            stack.callback(w.stop, 60)
            workers.append(w)
        for w in workers:
            wait_healthy(w, "/health", timeout=120)

        def cpu() -> dict[str, float]:
            pg = postgres_pids(args.postgres_url, db_url)
            return {"ml_api": process_cpu_s(ml.pid, group=True), "api": process_cpu_s(api.pid, group=True),
                    "standin": process_cpu_s(standin.pid, group=True),
                    "postgres": sum(process_cpu_s(p, missing_ok=True) for p in pg),
                    "workers": sum(process_cpu_s(w.pid, group=True) for w in workers),
                    "bench": sum(os.times()[:2])}  # fmt: skip

        def busy() -> float:
            return float(httpx.get(f"{standin.url}/_standin/stats", timeout=30).json()["busy_s"])

        print(f"{n} worker(s) x --concurrency {args.concurrency}: ingesting ...", flush=True)
        load0, cpu0, machine0, busy0 = os.getloadavg(), cpu(), machine_cpu_s()[0], busy()
        result = ingest(api.url, files, args.files_per_request, args.timeout)
        cpu1, machine1, busy1 = cpu(), machine_cpu_s()[0], busy()
        used = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0}
        other = max(0.0, machine1 - machine0 - sum(used.values()))
        capacity = result["seconds"] * len(os.sched_getaffinity(0))
    return result | {
        "workers": n, "concurrency": args.concurrency, "cpu_s": used,
        "standin_busy_s": round(busy1 - busy0, 2), "standin_busy_share": round((busy1 - busy0) / result["seconds"], 3),
        "other_programs_cpu_share": round(other / capacity, 3),
        "load_average_at_start": [round(x, 2) for x in load0],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="1,2,4", help="worker counts to run, comma-separated (the first is the base)")
    p.add_argument("--concurrency", type=int, default=2, help="`rag-backend worker --concurrency` (jobs at once)")
    p.add_argument("--docs", type=int, default=48, help="files uploaded per run")
    p.add_argument("--abstracts-per-doc", type=int, default=8, help="SciFact abstracts joined into each file")
    p.add_argument("--files-per-request", type=int, default=8)
    p.add_argument("--timeout", type=float, default=1800, help="seconds one run may take to ingest everything")
    p.add_argument("--poll-s", type=float, default=1.0, help="INGEST_POLL_S of the workers (the default's)")
    p.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="admin URL; the run creates and drops a database of its own there")  # fmt: skip
    p.add_argument("--shared-dir", type=Path, default=Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")))
    p.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    args = p.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    shared = args.shared_dir if args.shared_dir.is_absolute() else REPO / args.shared_dir
    files = scifact_files(shared.resolve(), args.docs, args.abstracts_per_doc)
    started = time.time()
    if os.getloadavg()[0] >= 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.2f} at start; other work skews every figure", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    ml_port = free_port()
    ml_env = ml_api_env(ml_port)
    ml_cmd = [str(ML_API_PYTHON), "-m", "ml_api", "serve"]
    results: dict[str, Any] = {"machine": host_info(), "args": {k: str(v) for k, v in vars(args).items()}}
    with serve(ml_cmd, ml_env, tmp / "ml.log", url=f"http://127.0.0.1:{ml_port}", cwd=REPO, timeout=240) as ml:
        with httpx.Client(base_url=ml.url, timeout=300) as c:
            results["ml_api_device"] = c.get("/info").json()["embedding"]["device"]
            c.post("/v1/embeddings", json={"input": ["warm-up text"] * 64, "encoding_format": "base64"})
        runs = [run_workers(n, args, ml, files, tmp) for n in counts]
    base = runs[0]["chunks_per_s"]
    for r in runs:
        r["ratio_vs_first"] = round(r["chunks_per_s"] / base, 3)
    results["runs"] = runs

    cores = results["machine"]["usable_cores"]
    print()
    print(f"{len(files)} files of {args.abstracts_per_doc} SciFact abstracts, ml-api on {results['ml_api_device']}, "
          f"{cores} usable cores")  # fmt: skip
    head = ("workers", "chunks", "failed", "seconds", "chunks/s", f"vs {counts[0]}", "CPU s ml-api", "api",
            "workers", "stand-in", "postgres", "stand-in busy", "other progs", "load avg start/end")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for r in runs:
        c = r["cpu_s"]
        row = (f"{r['workers']} x {r['concurrency']}", r["chunks"], r["failed"], r["seconds"], r["chunks_per_s"],
               f"{r['ratio_vs_first']:.2f}x", c["ml_api"], c["api"], c["workers"], c["standin"], c["postgres"],
               f"{r['standin_busy_s']} s ({r['standin_busy_share']:.0%})", f"{r['other_programs_cpu_share']:.0%}",
               f"{r['load_average_at_start'][0]} / {r['load_average_at_end'][0]}")  # fmt: skip
        print("| " + " | ".join(map(str, row)) + " |")
    if results["ml_api_device"] != "cuda":
        print(f"note: ml-api infers on the CPU here ({cores} cores shared by every process above), so its inference "
              "bounds chunks/s: the ratio shows what the workers cost and how well they coordinate, not the "
              "scaling a GPU ml-api gives")  # fmt: skip
    print(write_results(args.out_dir, "scale", results, started))


if __name__ == "__main__":
    main()
