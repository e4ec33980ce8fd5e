"""Probes under saturation: ml-api's liveness latency and the backends' readiness while ml-api refuses work (429).

The dev stack on loopback only: one ml-api (MAX_CONCURRENT_REQUESTS small, so saturation means 429s) and
--replicas backend processes pointing at it, each on its own embedded store. First an idle phase (the reference):
ml-api's /live every --probe-interval s. Then the saturated phase, bounded in time (--seconds) and count
(--max-requests): --clients concurrent clients post /embed batches to ml-api directly and queries to the backends,
while the same /live probe runs, plus ml-api's /ready and every backend's /ready once a second (what a kubelet does).
The backends and the load clients (a child process) run niced (--nice): they stand in for other machines, and on a
small box would otherwise take the CPU from what is measured; the probes and ml-api keep the normal priority.

Pass criteria (printed): ml-api /live p99 under 100 ms while saturated, and no backend /ready answer other than 200
while ml-api answered 429s. Results: a table on stdout and JSON in bench-results/, whose path is the last line
printed. Run with `make bench-probes` (BENCH_ARGS="--help").
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from devharness import free_port, host_info, serve, write_results

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
ML_API_PYTHON = REPO / "ml-api" / ".venv" / "bin" / "python"
TEXT = "an extended discussion of climate feedback loops and ocean heat uptake in the southern ocean "


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(pct(ms, 0.5), 2), "p99_ms": round(pct(ms, 0.99), 2),
            "max_ms": round(max(ms, default=float("nan")), 2),
            "mean_ms": round(statistics.fmean(ms), 2) if ms else float("nan")}  # fmt: skip


class Prober(threading.Thread):
    """GETs one URL every `interval` s on a connection of its own; latencies (ms) and statuses."""

    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.ms: list[float] = []
        self.statuses: Counter[int | str] = Counter()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as c:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    status: int | str = c.get(self.url).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.ms.append((time.perf_counter() - t0) * 1000)
                self.statuses[status] += 1
                self.stop.wait(max(0.0, self.interval - (time.perf_counter() - t0)))


def load(ml: str, backends: list[str], args: argparse.Namespace, deadline: float) -> dict[str, Counter]:
    """--clients threads alternating ml-api /embed batches and backend queries until the deadline or the cap."""
    counts: dict[str, Counter] = {"ml-api /embed": Counter(), "backend /api/query": Counter()}
    sent = [0]
    lock = threading.Lock()
    batch = [f"{TEXT} {i}" for i in range(args.batch)]

    def client(i: int) -> None:
        with httpx.Client(timeout=120) as c:
            n = 0
            while time.monotonic() < deadline:
                with lock:
                    if sent[0] >= args.max_requests:
                        return
                    sent[0] += 1
                n += 1
                to_backend = backends and n % 4 == 0
                key = "backend /api/query" if to_backend else "ml-api /embed"
                try:
                    if to_backend:
                        body = {"query": f"ocean heat {i}-{n}", "top_k": 3}
                        status: int | str = c.post(backends[n % len(backends)] + "/api/query", json=body).status_code
                    else:
                        status = c.post(ml + "/embed", json={"inputs": batch}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with lock:
                    counts[key][status] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 130)
    return counts


def _load_child(queue: Any, ml: str, backends: list[str], args: argparse.Namespace, deadline: float) -> None:
    if args.nice:
        os.nice(args.nice)  # the load clients stand in for other machines; the probes keep their priority
    queue.put({k: dict(v) for k, v in load(ml, backends, args, deadline).items()})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replicas", type=int, default=2, help="backend processes sharing the one ml-api")
    p.add_argument("--clients", type=int, default=16, help="concurrent load clients")
    p.add_argument("--batch", type=int, default=32, help="texts per /embed request of the load")
    p.add_argument("--max-concurrent", type=int, default=4, help="ml-api MAX_CONCURRENT_REQUESTS (small: 429s)")
    p.add_argument("--seconds", type=float, default=30, help="saturated phase length")
    p.add_argument("--idle-seconds", type=float, default=5, help="idle reference phase length")
    p.add_argument("--max-requests", type=int, default=5000, help="cap on load requests in the saturated phase")
    p.add_argument("--probe-interval", type=float, default=0.1, help="seconds between ml-api /live probes")
    p.add_argument("--ort-threads", type=int, default=1, help="ml-api ORT_INTRA_OP_THREADS (0: all cores)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the backends and load clients (0: none)")
    p.add_argument(
        "--ml-api-nice",
        type=int,
        default=0,
        help="niceness of ml-api (negative, as root: a stand-in for a box of its own on a shared machine)",
    )
    p.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    args = p.parse_args()
    started = time.time()
    if os.getloadavg()[0] >= 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.2f} at start; other work skews every figure", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-probes-"))
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    ml_port = free_port()
    ml_env = base | {
        "PORT": str(ml_port), "HOST": "127.0.0.1", "DEVICE": os.environ.get("DEVICE", "auto"),
        "MODELS_DIR": str(MODELS), "EMBED_MODEL": str(MODELS / "all-MiniLM-L6-v2"),
        "RERANK_MODEL": str(MODELS / "minilm-l6-crossencoder-test"), "HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING",
        "MAX_CONCURRENT_REQUESTS": str(args.max_concurrent), "ORT_INTRA_OP_THREADS": str(args.ort_threads),
    }  # fmt: skip
    # The backends and the load clients stand in for other machines: on a box this small they would otherwise take
    # the CPU from ml-api's event loop, which is what is measured. Niced, they still saturate ml-api (the 429s).
    niced = ["nice", "-n", str(args.nice)] if args.nice else []
    results: dict[str, Any] = {"machine": host_info(), "args": {k: str(v) for k, v in vars(args).items()}}
    with contextlib.ExitStack() as stack:
        ml_cmd = [
            *(["nice", "-n", str(args.ml_api_nice)] if args.ml_api_nice else []),
            str(ML_API_PYTHON),
            "-m",
            "ml_api",
            "serve",
        ]
        ml = stack.enter_context(
            serve(ml_cmd, ml_env, tmp / "ml.log", url=f"http://127.0.0.1:{ml_port}", cwd=REPO, timeout=240)
        )
        backends = []
        for i in range(args.replicas):
            port = free_port()
            env = base | {
                "DATA_DIR": str(tmp / f"backend-{i}"), "BACKEND_PORT": str(port), "BACKEND_HOST": "127.0.0.1",
                "EMBED_API_URL": ml.url, "RERANK_API_URL": ml.url, "LLM_PROVIDERS": "", "LOG_LEVEL": "WARNING",
                "CHUNK_TOKENIZER": str(MODELS / "all-MiniLM-L6-v2" / "tokenizer.json"),
            }  # fmt: skip
            cmd = [*niced, sys.executable, "-m", "rag_backend", "serve"]
            b = stack.enter_context(
                serve(cmd, env, tmp / f"backend-{i}.log", url=f"http://127.0.0.1:{port}", cwd=REPO, name=f"b{i}")
            )
            backends.append(b.url)
            with httpx.Client(base_url=b.url, timeout=120) as c:  # something to query
                doc = TEXT * 20
                c.post(
                    "/api/documents", files=[("files", ("ocean.txt", doc.encode(), "text/plain"))]
                ).raise_for_status()
                for _ in range(600):
                    coll = next((x for x in c.get("/api/collections").json() if x["name"] == "default"), None)
                    if coll and coll["ready"]:
                        break
                    time.sleep(0.2)
                assert c.get("/ready").status_code == 200

        results["ml_api_device"] = httpx.get(ml.url + "/info", timeout=30).json()["embedding"]["device"]
        print(f"idle reference: ml-api /live every {args.probe_interval} s for {args.idle_seconds} s ...", flush=True)
        idle = Prober(ml.url + "/live", args.probe_interval)
        idle.start()
        time.sleep(args.idle_seconds)
        idle.stop.set()
        idle.join()

        print(f"saturated: {args.clients} clients for {args.seconds} s (at most {args.max_requests} requests) ...",
              flush=True)  # fmt: skip
        queue = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(
            target=_load_child, args=(queue, ml.url, backends, args, time.monotonic() + args.seconds)
        )
        child.start()  # before the probe threads: a fork copies no running thread
        live = Prober(ml.url + "/live", args.probe_interval)
        ml_ready = Prober(ml.url + "/ready", 1.0)
        readies = [Prober(u + "/ready", 1.0) for u in backends]
        probers = [live, ml_ready, *readies]
        for pr in probers:
            pr.start()
        counts = queue.get(timeout=args.seconds + 300)
        child.join(30)
        for pr in probers:
            pr.stop.set()
            pr.join()

    idle_s, live_s = summary(idle.ms), summary(live.ms)
    refused = counts["ml-api /embed"].get(429, 0) + counts["backend /api/query"].get(429, 0)  # keys: int statuses
    not_ready = sum(n for r in readies for status, n in r.statuses.items() if status != 200)
    results |= {
        "live_idle": idle_s, "live_saturated": live_s,
        "live_p99_ratio_saturated_vs_idle": round(live_s["p99_ms"] / idle_s["p99_ms"], 2),
        "live_statuses": dict(live.statuses), "ml_api_ready_statuses": dict(ml_ready.statuses),
        "ml_api_ready": summary(ml_ready.ms),
        "backend_ready_statuses": [dict(r.statuses) for r in readies],
        "backend_ready": [summary(r.ms) for r in readies],
        "load": counts,
        "pass_live_p99_under_100ms": live_s["p99_ms"] < 100 and set(live.statuses) == {200},
        "pass_no_backend_unready": not_ready == 0 and refused > 0,
    }  # fmt: skip
    print()
    print(f"ml-api on {results['ml_api_device']}, MAX_CONCURRENT_REQUESTS={args.max_concurrent}, "
          f"{args.replicas} backend replicas, {results['machine']['usable_cores']} usable cores")  # fmt: skip
    print("| probe | phase | n | p50 ms | p99 ms | max ms | statuses |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(f"| ml-api /live | idle | {idle_s['n']} | {idle_s['p50_ms']} | {idle_s['p99_ms']} | {idle_s['max_ms']} | "
          f"{dict(idle.statuses)} |")  # fmt: skip
    print(f"| ml-api /live | saturated | {live_s['n']} | {live_s['p50_ms']} | {live_s['p99_ms']} | "
          f"{live_s['max_ms']} | {dict(live.statuses)} |")  # fmt: skip
    m = results["ml_api_ready"]
    print(f"| ml-api /ready | saturated | {m['n']} | {m['p50_ms']} | {m['p99_ms']} | {m['max_ms']} | "
          f"{dict(ml_ready.statuses)} |")  # fmt: skip
    for i, r in enumerate(readies):
        s = results["backend_ready"][i]
        print(f"| backend {i} /ready | saturated | {s['n']} | {s['p50_ms']} | {s['p99_ms']} | {s['max_ms']} | "
              f"{dict(r.statuses)} |")  # fmt: skip
    print(f"load answers: {results['load']}")
    print(
        f"/live p99 saturated vs idle: {results['live_p99_ratio_saturated_vs_idle']}x; "
        f"pass /live p99 < 100 ms: {results['pass_live_p99_under_100ms']}; "
        f"pass no backend unready while ml-api answered {refused} 429s: {results['pass_no_backend_unready']}"
    )
    print(write_results(args.out_dir, "probes", results, started))
    if not (results["pass_live_p99_under_100ms"] and results["pass_no_backend_unready"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
