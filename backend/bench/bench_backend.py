"""Backend benchmark: ingestion vs ml-api's raw embed throughput, query latency, store search at 100k chunks.

Each figure is printed next to a reference measured in the same run on the same machine:
- ingestion: SciFact abstracts uploaded as files through POST /api/documents until every one is ready,
  against the same chunk texts (chunked here with the backend's own Chunker) posted straight to ml-api
  (/v1/embeddings, base64, as the backend calls it) with the same batch size and concurrency. Goal: >= 0.8.
- queries: SciFact test claims through POST /api/query (hybrid + rerank) once (cache miss) and again
  (cache hit, Redis). The overhead reference is the sum of what the backend cannot avoid, measured per
  query: ml-api's embedding of the query, the store search time the backend reports, and ml-api /rerank of the
  same candidate texts. Goals: cache-hit p50 <= 2 ms, overhead <= 10 %.
- store: the embedded Qdrant engine (qdrant-edge) with --store-points 384-d chunks, after its HNSW index
  is built, against exact brute-force search in numpy over the same vectors. Goal: p50 <= 2 ms.

ml-api, Redis (the machine's, DB 14 with a prefix of our own, or a redis-server started here) and the
backend are started as subprocesses on free ports. Results: a table on stdout and JSON in bench-results/,
whose path is the last line printed. Run with `make bench-backend` (BENCH_ARGS="--help" for the knobs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
from devharness import free_port, host_info, serve, write_results
from devharness.cpu import process_cpu_s

from rag_backend.chunking import Chunker, load_tokenizer
from rag_backend.lexical import Lexical
from rag_backend.parsing import parse_document
from rag_backend.store import ChunkPoint, EdgeStore, SearchFilter, SearchRequest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
ML_API_PYTHON = REPO / "ml-api" / ".venv" / "bin" / "python"


def ml_api_env(port: int) -> dict[str, str]:
    """ml-api on the repository's models, quiet, on a port of the benchmark's (DEVICE from the environment)."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")} | {
        "PORT": str(port), "HOST": "127.0.0.1", "DEVICE": os.environ.get("DEVICE", "auto"),
        "MODELS_DIR": str(MODELS), "EMBED_MODEL": str(MODELS / "all-MiniLM-L6-v2"),
        "RERANK_MODEL": str(MODELS / "minilm-l6-crossencoder-test"), "HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING",
    }  # fmt: skip


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3) if values else float("nan")


def redis_answers(url: str) -> bool:
    with contextlib.suppress(redis.RedisError):
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    return False


@contextlib.contextmanager
def redis_url(tmp: Path) -> Iterator[str]:
    """The machine's Redis on DB 14, or a redis-server of our own on a free port."""
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    if redis_answers(url):
        yield url
        return
    port = free_port()
    url = f"redis://127.0.0.1:{port}/14"
    cmd = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "", "--dir", str(tmp)]
    with serve(cmd, None, tmp / "redis.log", url=url, health=lambda: redis_answers(url), timeout=10, stop_timeout=10):
        yield url


def scifact(shared: Path, n_docs: int, n_queries: int) -> tuple[list[tuple[str, str]], list[str]]:
    root = shared / "data" / "scifact"
    docs = []
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            docs.append((f"{d['_id']}.txt", f"{d['title']}\n\n{d['text']}"))
            if len(docs) == n_docs:
                break
    test_ids = {line.split("\t")[0] for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]}
    queries = []
    with (root / "queries.jsonl").open() as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in test_ids:
                queries.append(q["text"])
    return docs, queries[:n_queries]


# -- ingestion --------------------------------------------------------------------------------------
def bench_ingestion(backend: str, docs: list[tuple[str, str]], per_request: int) -> dict[str, Any]:
    with httpx.Client(base_url=backend, timeout=600) as c:
        start = time.perf_counter()
        ids = []
        for i in range(0, len(docs), per_request):
            files = [("files", (name, text.encode(), "text/plain")) for name, text in docs[i : i + per_request]]
            r = c.post("/api/documents", files=files, data={"collection": "bench"})
            r.raise_for_status()
            ids += [d["id"] for d in r.json()["documents"]]
        while True:  # the collection's counters: cheap to poll, unlike the document list
            coll = next(x for x in c.get("/api/collections").json() if x["name"] == "bench")
            if coll["ready"] + coll["failed"] >= len(ids):
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        rows = c.get("/api/documents", params={"collection": "bench", "limit": 1000}).json()["documents"]
        offset = len(rows)
        while offset < len(ids):
            rows += c.get("/api/documents", params={"collection": "bench", "limit": 1000, "offset": offset}).json()[
                "documents"
            ]
            offset = len(rows)
    failed = [d for d in rows if d["status"] == "failed"]
    chunks = sum(d["chunks"] for d in rows if d["status"] == "ready")
    return {"documents": len(rows), "failed": len(failed), "chunks": chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 2)}  # fmt: skip


async def _raw_embed(url: str, texts: list[str], batch: int, concurrency: int) -> float:
    batches = [texts[i : i + batch] for i in range(0, len(texts), batch)]
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=600) as client:

        async def one(b: list[str]) -> None:
            async with gate:
                # The route and encoding the backend uses (OpenAI shape, base64 floats).
                body = {"input": b, "model": "default", "encoding_format": "base64"}
                r = await client.post(f"{url}/v1/embeddings", json=body)
                r.raise_for_status()
                assert len(r.json()["data"]) == len(b)

        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in batches))
        return time.perf_counter() - start


def bench_raw_embed(ml_api: str, ml_pid: int, docs: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    chunker = Chunker(load_tokenizer(MODELS / "all-MiniLM-L6-v2"), args.chunk_tokens, args.chunk_overlap)
    texts = [c.text for _, text in docs for c in chunker.chunk(parse_document(text.encode(), "text"))]
    cpu0 = process_cpu_s(ml_pid)
    seconds = asyncio.run(_raw_embed(ml_api, texts, args.embed_batch_size, args.embed_concurrency))
    return {"chunks": len(texts), "seconds": round(seconds, 2), "chunks_per_s": round(len(texts) / seconds, 2),
            "cpu_s_ml_api": round(process_cpu_s(ml_pid) - cpu0, 2)}  # fmt: skip


# -- queries ----------------------------------------------------------------------------------------
def bench_queries(backend: str, ml_api: str, queries: list[str], candidates: int) -> dict[str, Any]:
    miss, hit, reference, search_ms = [], [], [], []
    with httpx.Client(base_url=backend, timeout=120) as c, httpx.Client(base_url=ml_api, timeout=120) as ml:
        body = {"collection": "bench", "top_k": candidates, "candidates": candidates}
        c.post("/api/query", json={**body, "query": "warm-up"}).raise_for_status()
        for q in queries:
            t = time.perf_counter()
            r = c.post("/api/query", json={**body, "query": q})
            miss.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            data = r.json()
            assert not data["cached"], "a cache-miss query was served from cache"
            texts = [x["text"] for x in data["results"]]
            t = time.perf_counter()
            ml.post("/v1/embeddings", json={"input": [q], "encoding_format": "base64"}).raise_for_status()
            ml.post("/rerank", json={"query": q, "texts": texts}).raise_for_status()
            direct = (time.perf_counter() - t) * 1000
            search_ms.append(data["timings"]["search_ms"])
            reference.append(direct + data["timings"]["search_ms"])
        for _ in range(5):
            for q in queries:
                t = time.perf_counter()
                r = c.post("/api/query", json={**body, "query": q})
                hit.append((time.perf_counter() - t) * 1000)
                assert r.json()["cached"], "a repeated query missed the cache"
    overhead = sum(miss) / sum(reference) - 1
    return {
        "queries": len(queries),
        "miss_p50_ms": pct(miss, 50), "miss_p99_ms": pct(miss, 99),
        "hit_p50_ms": pct(hit, 50), "hit_p99_ms": pct(hit, 99),
        "reference_p50_ms": pct(reference, 50), "search_p50_ms": pct(search_ms, 50),
        "overhead": round(overhead, 4),
    }  # fmt: skip


# -- store ------------------------------------------------------------------------------------------
async def _bench_store(n: int, dim: int, n_queries: int, texts: list[str], top: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    # Clustered vectors, like embeddings of real text: random unit vectors alone make HNSW look better.
    centers = rng.standard_normal((256, dim)).astype(np.float32)
    vectors = centers[rng.integers(0, 256, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lexical = Lexical()
    sparse_pool = [lexical.document(t) for t in texts]
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    store = EdgeStore(tmp, optimize_after_points=0)

    def payload(j: int) -> dict[str, Any]:
        return {"collection": "bench", "document_id": f"d{j // 4}", "text": ""}

    try:
        await store.ensure_space("bench", dim)
        t = time.perf_counter()
        for i in range(0, n, 2000):
            points = [
                ChunkPoint(str(uuid.UUID(int=j + 1)), vectors[j], *sparse_pool[j % len(sparse_pool)], payload(j))
                for j in range(i, min(n, i + 2000))
            ]
            await store.upsert("bench", points)
        upsert_s = time.perf_counter() - t
        t = time.perf_counter()
        await store.optimize("bench")
        optimize_s = time.perf_counter() - t
        queries = centers[rng.integers(0, 256, n_queries)] + 0.6 * rng.standard_normal((n_queries, dim)).astype(
            np.float32
        )
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        flt = SearchFilter(collections="bench", exclude_document_ids=["d1", "d2"])
        dense_ms, hybrid_ms, exact_ms, recall = [], [], [], []
        for qi, q in enumerate(queries):
            t = time.perf_counter()
            hits = (await store.search_batch("bench", [SearchRequest("dense", dense=q, limit=top, filter=flt)]))[0]
            dense_ms.append((time.perf_counter() - t) * 1000)
            sparse = lexical.query(texts[qi % len(texts)][:200])
            t = time.perf_counter()
            await store.search_batch(
                "bench",
                [SearchRequest("dense", dense=q, limit=top, filter=flt),
                 SearchRequest("bm25", sparse=sparse, limit=top, filter=flt)],
            )  # fmt: skip
            hybrid_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            scores = vectors @ q
            exact = np.argpartition(-scores, top)[:top]
            exact_ms.append((time.perf_counter() - t) * 1000)
            truth = {str(uuid.UUID(int=int(j) + 1)) for j in exact}
            recall.append(len(truth & {h.id for h in hits}) / top)
        info = await store.info("bench")
    finally:
        await store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "points": n, "dim": dim, "upsert_s": round(upsert_s, 2), "optimize_s": round(optimize_s, 2),
        "indexed_vectors": (info or {}).get("indexed_vectors"),
        "dense_p50_ms": pct(dense_ms, 50), "dense_p99_ms": pct(dense_ms, 99),
        "hybrid_p50_ms": pct(hybrid_ms, 50), "exact_numpy_p50_ms": pct(exact_ms, 50),
        "recall_at_10_vs_exact": round(float(np.mean(recall)), 4),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=1000, help="SciFact abstracts to ingest")
    p.add_argument("--files-per-request", type=int, default=100)
    p.add_argument("--queries", type=int, default=40, help="SciFact test claims (cache-miss pass)")
    p.add_argument("--candidates", type=int, default=20, help="rerank pool (and top_k) per query")
    p.add_argument("--store-points", type=int, default=100_000)
    p.add_argument("--store-queries", type=int, default=300)
    p.add_argument("--chunk-tokens", type=int, default=256)
    p.add_argument("--chunk-overlap", type=int, default=32)
    p.add_argument("--embed-batch-size", type=int, default=64)
    p.add_argument("--embed-concurrency", type=int, default=4)
    p.add_argument("--ingest-workers", type=int, default=4)
    p.add_argument("--skip-store", action="store_true")
    p.add_argument("--shared-dir", type=Path, default=Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")))
    p.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    args = p.parse_args()
    shared = args.shared_dir if args.shared_dir.is_absolute() else (REPO / args.shared_dir)
    docs, queries = scifact(shared.resolve(), args.docs, args.queries)

    tmp = Path(tempfile.mkdtemp(prefix="bench-backend-"))
    ml_port, be_port = free_port(), free_port()
    ml_url, be_url = f"http://127.0.0.1:{ml_port}", f"http://127.0.0.1:{be_port}"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    ml_env = ml_api_env(ml_port)
    results: dict[str, Any] = {"machine": host_info()}
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    ml_cmd = [str(ML_API_PYTHON), "-m", "ml_api", "serve"]
    with (
        redis_url(tmp) as r_url,
        serve(ml_cmd, ml_env, tmp / "ml.log", url=ml_url, cwd=REPO, timeout=240, name="ml-api") as ml,
    ):
        be_env = base | {
            "BACKEND_PORT": str(be_port), "BACKEND_HOST": "127.0.0.1", "DATA_DIR": str(tmp / "data"),
            "EMBED_API_URL": ml_url, "RERANK_API_URL": ml_url, "REDIS_URL": r_url, "CACHE_PREFIX": prefix,
            "CHUNK_TOKENIZER": str(MODELS / "all-MiniLM-L6-v2" / "tokenizer.json"),
            "CHUNK_TOKENS": str(args.chunk_tokens), "CHUNK_OVERLAP_TOKENS": str(args.chunk_overlap),
            "EMBED_BATCH_SIZE": str(args.embed_batch_size), "EMBED_CONCURRENCY": str(args.embed_concurrency),
            "INGEST_WORKERS": str(args.ingest_workers), "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        print(f"raw ml-api /embed on the chunks of {len(docs)} SciFact abstracts ...", flush=True)
        asyncio.run(_raw_embed(ml_url, ["warm-up text"] * 64, 64, 1))
        results["raw_embed"] = bench_raw_embed(ml_url, ml.pid, docs, args)
        backend_cmd = [sys.executable, "-m", "rag_backend", "serve"]
        with serve(backend_cmd, be_env, tmp / "backend.log", url=be_url, cwd=REPO, timeout=240, name="backend") as be:
            print("ingestion through the backend ...", flush=True)
            cpu0 = process_cpu_s(be.pid), process_cpu_s(ml.pid)
            results["ingestion"] = bench_ingestion(be_url, docs, args.files_per_request)
            results["ingestion"]["cpu_s_backend"] = round(process_cpu_s(be.pid) - cpu0[0], 2)
            results["ingestion"]["cpu_s_ml_api"] = round(process_cpu_s(ml.pid) - cpu0[1], 2)
            results["ingestion"]["ratio_vs_raw_embed"] = round(
                results["ingestion"]["chunks_per_s"] / results["raw_embed"]["chunks_per_s"], 3
            )
            print(f"{len(queries)} queries, cache miss then hit ...", flush=True)
            results["queries"] = bench_queries(be_url, ml_url, queries, args.candidates)
        client = redis.Redis.from_url(r_url)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    if not args.skip_store:
        print(f"store: {args.store_points} points in the embedded engine ...", flush=True)
        texts = [t for _, t in docs]
        results["store"] = asyncio.run(_bench_store(args.store_points, 384, args.store_queries, texts, 10))
    shutil.rmtree(tmp, ignore_errors=True)

    ing, raw, q = results["ingestion"], results["raw_embed"], results["queries"]
    print()
    print(f"ingestion     {ing['chunks']} chunks of {ing['documents']} docs in {ing['seconds']} s: "
          f"{ing['chunks_per_s']} chunks/s = {ing['ratio_vs_raw_embed']}x raw ml-api embed "
          f"({raw['chunks_per_s']} chunks/s)   goal >= 0.8x")  # fmt: skip
    print(f"              CPU seconds: backend {ing['cpu_s_backend']}, ml-api {ing['cpu_s_ml_api']} "
          f"(raw embed: ml-api {raw['cpu_s_ml_api']})")  # fmt: skip
    print(f"query miss    p50 {q['miss_p50_ms']} ms, p99 {q['miss_p99_ms']} ms; reference (ml-api embed + "
          f"store search + ml-api rerank) p50 {q['reference_p50_ms']} ms: overhead {q['overhead'] * 100:.1f} %"
          "   goal <= 10 %")  # fmt: skip
    print(f"query hit     p50 {q['hit_p50_ms']} ms, p99 {q['hit_p99_ms']} ms   goal p50 <= 2 ms")
    if "store" in results:
        s = results["store"]
        print(f"store search  {s['points']} points: dense p50 {s['dense_p50_ms']} ms (p99 {s['dense_p99_ms']}), "
              f"hybrid batch p50 {s['hybrid_p50_ms']} ms; exact numpy p50 {s['exact_numpy_p50_ms']} ms; "
              f"recall@10 vs exact {s['recall_at_10_vs_exact']}   goal p50 <= 2 ms")  # fmt: skip
    print(write_results(args.out_dir, "backend", results))


if __name__ == "__main__":
    main()
