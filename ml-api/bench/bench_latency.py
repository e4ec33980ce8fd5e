"""Single short text latency: `POST /embed` over HTTP vs the same ONNX forward in-process, in one run.

What a search box feels: one query, no concurrency. The reference is the best a caller could do without a
server: the same model file in ONNX Runtime in-process (tokenise + forward + normalise), with the session
options the service uses. Requests alternate between the two (in-process, then HTTP, ...) so load from
anything else on the machine hits both alike. Prints p50/p99 of each, the ratio of the p50s and the overhead
(HTTP p50 minus in-process p50, in ms), and where the server's share went: the floor of a route that does no
inference (`GET /v1/models`) and the server's own timing headers (tokenisation, queue, inference, total). It also
times that route right after an untimed in-process forward and once more at once: the difference is what caches
emptied by the model's weights cost a request's code, which the in-process reference never runs.

The client is a plain keep-alive `http.client` connection, so the overhead is the server's and the loopback's,
not a client library's; httpx (what the backend uses) is measured beside it for comparison.

    ml-api/.venv/bin/python ml-api/bench/bench_latency.py [--n 300] [--text "..."] [--floor]   (also in `make bench-ml`)

`--floor` measures floor_app.py the same way afterwards: a bare uvicorn app doing only what any server must (one
thread hop, orjson), so the difference between the two overheads is what ml-api itself adds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
from devharness import free_port, serve
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
TEXT = "how do solar panels turn sunlight into electricity?"


class InProcess:
    """Tokeniser + ONNX session on the service's file, configured as the service configures its own."""

    def __init__(self, model_dir: Path, spinning: bool = False) -> None:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(manifest["max_length"]))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # As the server's session (ORT_ALLOW_SPINNING): the overhead is then the server's, not a thread setting's.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.session = ort.InferenceSession(
            str(model_dir / manifest.get("file", "model.onnx")), options, providers=["CPUExecutionProvider"]
        )
        self.inputs = list(manifest["inputs"])
        self.output = manifest.get("output", "sentence_embedding")

    def embed(self, text: str) -> np.ndarray:
        ids = np.asarray([self.tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        vec = self.session.run([self.output], feeds)[0][0]
        return vec / np.linalg.norm(vec)


def percentile(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


class Lean:
    """One keep-alive connection, no client library between the timer and the socket."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        res = self.conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()

    def close(self) -> None:
        self.conn.close()


HEADERS = ("x-tokenization-time", "x-queue-time", "x-inference-time", "x-total-time")


def measure(url: str, model_dir: Path, n: int, text: str, spinning: bool = False) -> dict[str, Any]:
    """Alternate in-process and HTTP calls; p50/p99 (ms) of both, ratio, overhead, where the time went."""
    local = InProcess(model_dir, spinning)
    body = json.dumps({"inputs": text}).encode()
    lean = Lean(url)
    inproc: list[float] = []
    served_ms: list[float] = []
    floor: list[float] = []
    via_httpx: list[float] = []
    cold: list[float] = []  # GET /v1/models right after an in-process forward (caches evicted by the weights)
    hot: list[float] = []  # the same GET once more, at once
    server: dict[str, list[float]] = {h: [] for h in HEADERS}
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(20):  # warm everything: first runs allocate
            local.embed(text)
            assert lean.request("POST", "/embed", body)[0] == 200
            lean.request("GET", "/v1/models")
            client.post("/embed", content=body, headers={"Content-Type": "application/json"}).raise_for_status()
        for _ in range(n):
            t0 = time.perf_counter()
            ref = local.embed(text)
            inproc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            status, headers, payload = lean.request("POST", "/embed", body)
            served_ms.append(time.perf_counter() - t0)
            assert status == 200, payload
            for h in HEADERS:
                server[h].append(float(headers[h]) / 1000)
            t0 = time.perf_counter()
            lean.request("GET", "/v1/models")
            floor.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            client.post("/embed", content=body, headers={"Content-Type": "application/json"}).raise_for_status()
            via_httpx.append(time.perf_counter() - t0)
            local.embed(text)
            for samples in (cold, hot):
                t0 = time.perf_counter()
                lean.request("GET", "/v1/models")
                samples.append(time.perf_counter() - t0)
        served = np.asarray(json.loads(payload)[0])
    lean.close()
    cosine = float(served @ ref / (np.linalg.norm(served) * np.linalg.norm(ref)))
    result = {
        "text_chars": len(text),
        "requests": n,
        "in_process_p50_ms": round(percentile(inproc, 50), 3),
        "in_process_p99_ms": round(percentile(inproc, 99), 3),
        "http_p50_ms": round(percentile(served_ms, 50), 3),
        "http_p99_ms": round(percentile(served_ms, 99), 3),
        "httpx_p50_ms": round(percentile(via_httpx, 50), 3),
        "no_inference_route_p50_ms": round(percentile(floor, 50), 3),
        "after_forward_route_p50_ms": round(percentile(cold, 50), 3),
        "warm_route_p50_ms": round(percentile(hot, 50), 3),
        **{
            f"server_{h.removeprefix('x-').replace('-', '_')}_p50_ms": round(percentile(server[h], 50), 3)
            for h in HEADERS
        },
        "cosine": round(cosine, 6),
    }
    result["ratio_p50"] = round(result["http_p50_ms"] / result["in_process_p50_ms"], 3)
    result["overhead_p50_ms"] = round(result["http_p50_ms"] - result["in_process_p50_ms"], 3)
    return result


def report(result: dict[str, Any]) -> None:
    print(
        f"  single short text ({result['text_chars']} chars, {result['requests']} requests, alternating): "
        f"in-process p50 {result['in_process_p50_ms']:.2f} ms (p99 {result['in_process_p99_ms']:.2f}), "
        f"HTTP /embed p50 {result['http_p50_ms']:.2f} ms (p99 {result['http_p99_ms']:.2f}), "
        f"overhead {result['overhead_p50_ms']:.2f} ms, ratio {result['ratio_p50']:.2f}x, "
        f"cosine {result['cosine']:.6f}\n"
        f"  where it went (p50 ms): GET /v1/models (no inference) {result['no_inference_route_p50_ms']:.2f}; "
        f"server tokenisation {result['server_tokenization_time_p50_ms']:.2f}, queue "
        f"{result['server_queue_time_p50_ms']:.2f}, inference {result['server_inference_time_p50_ms']:.2f}, "
        f"total {result['server_total_time_p50_ms']:.2f}; the same /embed through httpx {result['httpx_p50_ms']:.2f}\n"
        "  cold caches (p50 ms): GET /v1/models right after an in-process forward "
        f"{result['after_forward_route_p50_ms']:.2f}, the next one {result['warm_route_p50_ms']:.2f} "
        "(the weights evict the code a request runs: every request after a forward pays it, the in-process "
        "reference never does)",
        flush=True,
    )


def _serve_and_measure(
    name: str, cmd: list[str], model_dir: Path, n: int, text: str, spinning: bool = False, **settings: str
) -> dict[str, Any]:
    """Start `cmd` on a free port (ml-api reads PORT, uvicorn's CLI UVICORN_PORT), measure it, stop it."""
    port = free_port()
    address = {"PORT": str(port), "HOST": "127.0.0.1", "UVICORN_PORT": str(port), "UVICORN_HOST": "127.0.0.1"}
    env = {**os.environ, **address, "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1", **settings}
    log = REPO / ".bench" / f"latency-{name}.log"
    log.parent.mkdir(exist_ok=True)
    with serve(cmd, env, log, url=f"http://127.0.0.1:{port}", name=name) as service:
        return measure(service.url, model_dir, n, text, spinning)


def main_result(models_dir: Path, n: int, text: str = TEXT, **settings: str) -> dict[str, Any]:
    """Start `ml-api serve` on the default models (plus `settings`, e.g. ORT_ALLOW_SPINNING), measure, stop it."""
    model_dir = models_dir / "all-MiniLM-L6-v2"
    models = {
        "DEVICE": "cpu",
        "EMBED_MODEL": str(model_dir),
        "RERANK_MODEL": str(models_dir / "minilm-l6-crossencoder-test"),
    }
    spinning = settings.get("ORT_ALLOW_SPINNING", "false").lower() in ("1", "true", "yes", "on")
    cmd = [sys.executable, "-m", "ml_api", "serve"]
    return _serve_and_measure("ml-api", cmd, model_dir, n, text, spinning, **{**models, **settings})  # --set wins


def floor_result(models_dir: Path, n: int, text: str = TEXT) -> dict[str, Any]:
    """The same measurement against floor_app.py: the bare server ml-api's overhead is compared with."""
    model_dir = models_dir / "all-MiniLM-L6-v2"
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent), "floor_app:app"]
    cmd += ["--log-level", "warning", "--no-access-log", "--no-server-header", "--no-proxy-headers"]
    return _serve_and_measure("floor", cmd, model_dir, n, text, FLOOR_MODEL_DIR=str(model_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--n", type=int, default=300, help="timed requests of each kind")
    parser.add_argument("--text", default=TEXT)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting, e.g. ORT_ALLOW_SPINNING=false",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure floor_app.py, a bare uvicorn app doing the same work with one thread hop",
    )
    args = parser.parse_args(argv)
    settings = dict(s.split("=", 1) for s in args.set)
    result = main_result(args.models_dir, args.n, args.text, **settings)
    report(result)
    if args.floor:
        floor = floor_result(args.models_dir, args.n, args.text)
        print("  the floor (floor_app.py: uvicorn, orjson, one thread hop, nothing else):")
        report(floor)
        own = result["overhead_p50_ms"] - floor["overhead_p50_ms"]
        print(f"  ml-api's own share of its overhead (its overhead minus the floor's): {own:.2f} ms")
        result = {**result, "floor": floor, "own_overhead_ms": round(own, 3)}
    print(json.dumps({**result, "settings": settings}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
