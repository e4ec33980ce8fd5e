"""Export the sentence-transformers MiniLM to ONNX with optimum, for Infinity's optimum engine.

Runs in the Infinity venv (.bench/infinity), called by bench_ml.py. Why it exists: Infinity's optimum
engine only loads a directory that already holds an ONNX file, and optimum 1.x calls torch.onnx.export
without `dynamo`, which torch 2.13 turns into the dynamo exporter (it needs onnxscript, absent there);
so the TorchScript exporter that optimum was written for is selected explicitly.

Usage: python infinity_export.py SENTENCE_TRANSFORMERS_DIR OUT_DIR
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path


def export(src: Path, out: Path) -> None:
    """Copy the model's sentence-transformers files (pooling, max_seq_length), then add optimum's model.onnx."""
    import torch

    torch.onnx.export = functools.partial(torch.onnx.export, dynamo=False)  # before optimum binds the name
    from optimum.exporters.onnx import main_export

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx"))
    main_export(str(src), output=str(tmp), task="feature-extraction", library_name="transformers")
    if not (tmp / "model.onnx").is_file():
        raise SystemExit(f"optimum wrote no model.onnx into {tmp}")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    export(Path(sys.argv[1]), Path(sys.argv[2]))
