"""`ml-api models {prepare,export,add-reranker,list}`: what each action does and prints."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ml_api.errors import ModelError
from ml_api.tools.export import export_embedder
from ml_api.tools.export_reranker import export_reranker
from ml_api.tools.prepare import install_reranker, list_models, prepare_defaults


def run(args: argparse.Namespace, models_dir: Path) -> int:
    """Exit code 2 with the reason on stderr for a model problem, so scripts can tell it from a crash."""
    try:
        if args.action == "prepare":
            shared = Path(os.environ.get("SHARED_DIR", "../shared"))
            done = prepare_defaults(
                models_dir, shared if shared.is_dir() else None, args.reranker, onnx_twin_too=args.onnx_twin
            )
            for line in done.lines:
                print(line)
            if done.warning:  # on stderr, after the lines, so it is the last thing `make models` shows
                print(done.warning, file=sys.stderr, flush=True)
        elif args.action == "export":
            suffix = f"-{args.quantize}" if args.quantize else ""
            out = Path(args.out) if args.out else models_dir / (Path(args.source.rstrip("/")).name + suffix)
            manifest = export_embedder(args.source, out, name=args.name, optimize=args.optimize, quantize=args.quantize)
            print(json.dumps(manifest, indent=2))
        elif args.action == "add-reranker" and (args.onnx or args.quantize):
            if not args.onnx:
                raise ModelError("--quantize needs --onnx (FlagReranker serves the checkpoint as it is)")
            suffix = "-onnx" + (f"-{args.quantize}" if args.quantize else "")
            out = Path(args.out) if args.out else models_dir / (Path(args.source.rstrip("/")).name + suffix)
            print(json.dumps(export_reranker(args.source, out, name=args.name, quantize=args.quantize), indent=2))
        elif args.action == "add-reranker":
            out = Path(args.out) if args.out else models_dir / Path(args.source.rstrip("/")).name
            print(json.dumps(install_reranker(args.source, out, name=args.name), indent=2))
        else:
            _print_listing(models_dir)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _print_listing(models_dir: Path) -> None:
    found = list_models(models_dir)
    if not found:
        print(f"no models in {models_dir}; run `ml-api models prepare`")
    for m in found:
        extra = (
            f"dim={m['dimension']} max_len={m['max_length']} pooling={m['pooling']}"
            if m["kind"] == "embedding"
            else f"max_len={m['max_length']} arch={m.get('architecture')}"
        )
        print(f"{m['kind']:<10} {m['name']:<45} {m['size_mb']:>7} MB  {extra}  {m['path']}")
