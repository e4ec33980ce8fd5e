"""Single short text latency: `POST /embed` over HTTP vs the same ONNX forward in-process, in one run.

What a search box feels: one query, no concurrency. The reference is the best a caller could do without a
server: the same model file in ONNX Runtime in-process (tokenise + forward + normalise), with the session
options the service uses. Requests alternate between the two (in-process, then HTTP, ...) so load from
anything else on the machine hits both alike. Prints p50/p99 of each and the ratio of the p50s.

    ml-api/.venv/bin/python ml-api/bench/bench_latency.py [--n 300] [--text "..."]   (also part of `make bench-ml`)
"""

from __future__ import annotations

import argparse
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

    def __init__(self, model_dir: Path) -> None:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(int(manifest["max_length"]))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
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


def measure(url: str, model_dir: Path, n: int, text: str) -> dict[str, Any]:
    """Alternate in-process and HTTP calls; return p50/p99 (ms) of both, the ratio and their agreement."""
    local = InProcess(model_dir)
    body = json.dumps({"inputs": text}).encode()
    headers = {"Content-Type": "application/json"}
    inproc: list[float] = []
    http: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(20):  # warm both: first runs allocate
            local.embed(text)
            client.post("/embed", content=body, headers=headers).raise_for_status()
        for _ in range(n):
            t0 = time.perf_counter()
            ref = local.embed(text)
            inproc.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = client.post("/embed", content=body, headers=headers)
            http.append(time.perf_counter() - t0)
            res.raise_for_status()
        served = np.asarray(res.json()[0])
    cosine = float(served @ ref / (np.linalg.norm(served) * np.linalg.norm(ref)))
    result = {
        "text_chars": len(text),
        "requests": n,
        "in_process_p50_ms": round(percentile(inproc, 50), 3),
        "in_process_p99_ms": round(percentile(inproc, 99), 3),
        "http_p50_ms": round(percentile(http, 50), 3),
        "http_p99_ms": round(percentile(http, 99), 3),
        "cosine": round(cosine, 6),
    }
    result["ratio_p50"] = round(result["http_p50_ms"] / result["in_process_p50_ms"], 3)
    return result


def report(result: dict[str, Any]) -> None:
    print(
        f"  single short text ({result['text_chars']} chars, {result['requests']} requests, alternating): "
        f"in-process p50 {result['in_process_p50_ms']:.2f} ms (p99 {result['in_process_p99_ms']:.2f}), "
        f"HTTP /embed p50 {result['http_p50_ms']:.2f} ms (p99 {result['http_p99_ms']:.2f}), "
        f"ratio {result['ratio_p50']:.2f}x, cosine {result['cosine']:.6f}",
        flush=True,
    )


def main_result(models_dir: Path, n: int, text: str = TEXT) -> dict[str, Any]:
    """Start `ml-api serve` on the default models, measure, stop it."""
    model_dir = models_dir / "all-MiniLM-L6-v2"
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DEVICE": "cpu",
        "EMBED_MODEL": str(model_dir),
        "RERANK_MODEL": str(models_dir / "minilm-l6-crossencoder-test"),
        "LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    log = REPO / ".bench" / "latency-ml-api.log"
    log.parent.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "ml_api", "serve"]
    with serve(cmd, env, log, url=f"http://127.0.0.1:{port}", name="ml-api") as service:
        return measure(service.url, model_dir, n, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--n", type=int, default=300, help="timed requests of each kind")
    parser.add_argument("--text", default=TEXT)
    args = parser.parse_args(argv)
    result = main_result(args.models_dir, args.n, args.text)
    report(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
