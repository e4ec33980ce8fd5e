"""The checks of `scripts/gpu-check`: each compares the device under test with the CPU and times both.

Every check returns a `Check` (pass, fail or skipped, with the reason) instead of raising, so one missing
package or device costs that check only. The numbers compared are the service's own: ml-api's `Reranker`
(FlagReranker's model and tokenisation) and `Embedder` (ONNX Runtime) in-process, then `ml-api serve` over
HTTP. The CPU run is the reference of the same run, so the ratios printed hold on that machine only.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FP16_LOGIT_TOL = 0.05  # |logit(fp16 on CUDA) - logit(fp32 on CPU)|: fp16 keeps ~3 significant digits
FP32_LOGIT_TOL = 1e-3  # the same model in fp32 on two devices (or ml-api's batching vs compute_score)
MIN_SPEARMAN = 0.99
MIN_COSINE = {"cuda": 0.999, "cpu": 0.9999}

TOPICS = ["giant pandas", "the Paris metro", "protein folding", "solar panels", "tax law", "sourdough", "volcanoes"]
WORDS = "the a of in on with under over about because while after before study shows result data model".split()


@dataclass(frozen=True)
class Sizes:
    """How much work each timing does: small for --cpu-smoke (2 busy cores), enough to fill a GPU otherwise."""

    docs_per_query: int = 32
    repeat: int = 4
    embed_texts: int = 256
    latency_calls: int = 30
    max_words: int = 160


SMOKE = Sizes(docs_per_query=6, repeat=1, embed_texts=32, latency_calls=3, max_words=24)


@dataclass
class Check:
    name: str
    status: str  # "pass", "fail" or "skipped"
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def corpus(n: int, seed: int = 0, max_words: int = 160) -> list[str]:
    """Deterministic texts of 4 to `max_words` words, each about one topic, so rerank pairs have clear winners."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        words = [rng.choice(WORDS) for _ in range(min(max_words, rng.choice([4, 12, 30, 60, 160])))]
        words.insert(rng.randrange(len(words) + 1), topic)
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def rerank_pairs(docs_per_query: int, max_words: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    queries = [f"what is known about {t}?" for t in TOPICS]
    docs = corpus(docs_per_query, seed=1, max_words=max_words)
    return queries, docs, [(q, d) for q in queries for d in docs]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def timed(fn: Callable[[], int], seconds: float) -> float:
    """Items per second of `fn` (which returns the items it did), after one warm-up call, for about `seconds`."""
    fn()
    done, start = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def p50_ms(fn: Callable[[], object], n: int = 30) -> float:
    fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def plan(device: str, fp16: bool, providers: list[str] | None = None) -> Any:
    from ml_api.device import DevicePlan

    default = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return DevicePlan(device, providers or default, fp16 and device == "cuda", "gpu-check")  # type: ignore[arg-type]


def check_reranker(path: Path, device: str, seconds: float, sizes: Sizes = Sizes()) -> Check:
    """ml-api's reranker on `device` (fp16 on CUDA) against fp32 on CPU, and against FlagReranker's own call."""
    from ml_api.torch_reranker import Reranker

    name = f"reranker[{device}{' fp16' if device == 'cuda' else ''}]"
    queries, _, pairs = rerank_pairs(sizes.docs_per_query, sizes.max_words)
    cpu = Reranker(path, plan("cpu", False))
    dut = cpu if device == "cpu" else Reranker(path, plan(device, True))
    ref = cpu.score(pairs)
    got = ref if dut is cpu else dut.score(pairs)
    flag = np.asarray(dut.flag.compute_score([list(p) for p in pairs], batch_size=64, normalize=False), dtype=float)
    tol = FP16_LOGIT_TOL if dut.fp16 else FP32_LOGIT_TOL
    grid_ref, grid_got = ref.reshape(len(queries), -1), got.reshape(len(queries), -1)
    figures: dict[str, Any] = {
        "pairs": len(pairs),
        "max_abs_logit_diff_vs_cpu": float(np.abs(got - ref).max()),
        "spearman_vs_cpu": spearman(got, ref),
        "top1_agreement_vs_cpu": float(np.mean(grid_ref.argmax(1) == grid_got.argmax(1))),
        "max_abs_logit_diff_vs_compute_score": float(np.abs(got - flag).max()),
        "fp16": dut.fp16,
    }
    many = pairs * sizes.repeat
    figures["pairs_per_s"] = round(timed(lambda: len(dut.score(many, batch_size=64)), seconds), 1)
    figures["compute_score_pairs_per_s"] = round(
        timed(lambda: len(dut.flag.compute_score([list(p) for p in many], batch_size=64)), seconds), 1
    )
    figures["p50_ms_one_pair"] = p50_ms(lambda: dut.score(pairs[:1]), sizes.latency_calls)
    if dut is not cpu:
        figures["cpu_pairs_per_s"] = round(timed(lambda: len(cpu.score(many, batch_size=64)), seconds), 1)
        figures["cpu_p50_ms_one_pair"] = p50_ms(lambda: cpu.score(pairs[:1]), sizes.latency_calls)
        figures["speedup_vs_cpu"] = round(figures["pairs_per_s"] / figures["cpu_pairs_per_s"], 2)
    figures["ratio_vs_compute_score"] = round(figures["pairs_per_s"] / figures["compute_score_pairs_per_s"], 2)
    ok = (
        figures["max_abs_logit_diff_vs_cpu"] <= tol
        and figures["spearman_vs_cpu"] >= MIN_SPEARMAN
        and figures["max_abs_logit_diff_vs_compute_score"] <= tol
    )
    detail = (
        f"max |logit diff| vs CPU fp32 {figures['max_abs_logit_diff_vs_cpu']:.2e} (tolerance {tol}), Spearman "
        f"{figures['spearman_vs_cpu']:.4f}, vs FlagReranker.compute_score "
        f"{figures['max_abs_logit_diff_vs_compute_score']:.2e}; "
        f"{figures['pairs_per_s']} pairs/s ({figures['ratio_vs_compute_score']}x compute_score"
        + (f", {figures['speedup_vs_cpu']}x CPU" if "speedup_vs_cpu" in figures else "")
        + f"), one pair p50 {figures['p50_ms_one_pair']} ms"
    )
    return Check(name, "pass" if ok else "fail", detail, figures)


def check_embedder(path: Path, device: str, providers: list[str], seconds: float, sizes: Sizes = Sizes()) -> Check:
    """ml-api's ONNX embedder through ONNX Runtime's CUDA provider against its CPU provider."""
    name = f"embedder[onnx {device}]"
    if device == "cuda" and "CUDAExecutionProvider" not in providers:
        return Check(name, "skipped", no_ort_cuda(providers))
    from ml_api.embedding import Embedder, normalize_rows

    texts = corpus(sizes.embed_texts, max_words=sizes.max_words)
    cpu = Embedder(path, plan("cpu", False))
    dut = cpu if device == "cpu" else Embedder(path, plan(device, False))

    def embed(model: Any, items: list[str]) -> np.ndarray:
        ids = model.tokenize(items)
        return np.concatenate([model.forward(ids[i : i + 32]) for i in range(0, len(ids), 32)])

    ref = normalize_rows(embed(cpu, texts))
    got = ref if dut is cpu else normalize_rows(embed(dut, texts))
    cosine = float(np.min(np.sum(ref * got, axis=1)))
    figures: dict[str, Any] = {"texts": len(texts), "min_cosine_vs_cpu": cosine, "providers": dut.providers}
    figures["texts_per_s"] = round(timed(lambda: len(embed(dut, texts)), seconds), 1)
    figures["p50_ms_one_text"] = p50_ms(lambda: embed(dut, texts[:1]), sizes.latency_calls)
    if dut is not cpu:
        figures["cpu_texts_per_s"] = round(timed(lambda: len(embed(cpu, texts)), seconds), 1)
        figures["cpu_p50_ms_one_text"] = p50_ms(lambda: embed(cpu, texts[:1]), sizes.latency_calls)
        figures["speedup_vs_cpu"] = round(figures["texts_per_s"] / figures["cpu_texts_per_s"], 2)
    ok = cosine >= MIN_COSINE[device]
    detail = (
        f"min cosine vs CPU {cosine:.6f}; {figures['texts_per_s']} texts/s"
        + (f" ({figures['speedup_vs_cpu']}x CPU)" if "speedup_vs_cpu" in figures else "")
        + f", one text p50 {figures['p50_ms_one_text']} ms"
    )
    return Check(name, "pass" if ok else "fail", detail, figures)


def no_ort_cuda(providers: list[str]) -> str:
    return (
        f"onnxruntime has no CUDAExecutionProvider (providers: {', '.join(providers)}); onnxruntime-gpu is not "
        "installed here and cannot be carried (its cp312 wheel is 255.6 MB for 1.31.1, the 64 MiB budget holds "
        "the whole bundle), so the ONNX models ran on ONNX Runtime's CPU provider only"
    )


async def _load(url: str, route: str, body: dict[str, Any], items: int, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        (await client.post(route, json=body)).raise_for_status()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                (await client.post(route, json=body)).raise_for_status()
                latencies.append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return {
        "items_per_s": round(len(latencies) * items / elapsed, 1),
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "clients": clients,
    }


def check_serve(
    device: str, embed_dir: Path, rerank_dir: Path, work: Path, seconds: float, sizes: Sizes = Sizes()
) -> Check:
    """`ml-api serve` with DEVICE=`device`: /info, answers equal to the in-process CPU models, load figures."""
    import httpx
    from devharness import free_port, serve

    from ml_api.embedding import Embedder, normalize_rows
    from ml_api.torch_reranker import Reranker

    name = f"serve[{device}]"
    texts = corpus(32, seed=2, max_words=sizes.max_words)
    queries, docs, _ = rerank_pairs(16, sizes.max_words)
    embedder = Embedder(embed_dir, plan("cpu", False))
    ref_vectors = normalize_rows(embedder.forward(embedder.tokenize(texts)))
    ref_logits = Reranker(rerank_dir, plan("cpu", False)).score([(queries[0], d) for d in docs])
    port = free_port()
    env = {
        **os.environ,
        **{"DEVICE": device, "EMBED_MODEL": str(embed_dir), "RERANK_MODEL": str(rerank_dir), "LOG_JSON": "true"},
        **{"MODELS_DIR": str(work), "HOST": "127.0.0.1", "PORT": str(port), "HF_HUB_OFFLINE": "1"},
    }
    url, log = f"http://127.0.0.1:{port}", work / f"serve-{device}.log"
    with serve([sys.executable, "-m", "ml_api", "serve"], env, log, url=url, timeout=300, name=name) as svc:
        with httpx.Client(base_url=url, timeout=300) as http:
            info = http.get("/info").json()
            vectors = np.asarray(http.post("/embed", json={"inputs": texts}).json())
            ranked = http.post("/rerank", json={"query": queries[0], "texts": docs, "raw_scores": True}).json()
        logits = np.empty(len(docs))
        for item in ranked:
            logits[item["index"]] = item["score"]
        embed_body = {"inputs": corpus(8, seed=3, max_words=sizes.max_words)}
        rerank_body = {"query": queries[1], "texts": docs}
        figures: dict[str, Any] = {
            "startup_s": round(svc.startup_s, 1),
            "device": info["device"],
            "providers": info["embedding"]["providers"],
            "rerank_fp16": info["reranking"]["fp16"],
            "min_cosine_vs_cpu": float(np.min(np.sum(vectors * ref_vectors, axis=1))),
            "max_abs_logit_diff_vs_cpu": float(np.abs(logits - ref_logits).max()),
            "embed": asyncio.run(_load(url, "/embed", embed_body, 8, 16, seconds)),
            "rerank": asyncio.run(_load(url, "/rerank", rerank_body, len(docs), 16, seconds)),
            "embed_one_text": asyncio.run(_load(url, "/embed", {"inputs": "hello world"}, 1, 1, seconds / 2)),
        }
    tol = FP16_LOGIT_TOL if figures["rerank_fp16"] else FP32_LOGIT_TOL
    ok = (
        info["device"] == device
        and figures["min_cosine_vs_cpu"] >= MIN_COSINE[device]
        and figures["max_abs_logit_diff_vs_cpu"] <= tol
    )
    detail = (
        f"device {info['device']}, /embed min cosine vs in-process CPU {figures['min_cosine_vs_cpu']:.6f}, /rerank "
        f"max |logit diff| {figures['max_abs_logit_diff_vs_cpu']:.2e}; /embed {figures['embed']['items_per_s']} "
        f"texts/s and /rerank {figures['rerank']['items_per_s']} pairs/s with 16 clients; one short text p50 "
        f"{figures['embed_one_text']['p50_ms']} ms"
    )
    return Check(name, "pass" if ok else "fail", detail, figures)
