"""The reranker slot's ONNX twin: `ml-api models prepare` (make models) exports the checkpoint in the slot to
slot/onnx, which the slim variant (no torch) serves from the same RERANK_MODEL while the full variant keeps serving
the checkpoint; without a twin the slim variant still refuses a checkpoint, saying how to get one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import RERANK_DIR

from ml_api import registry
from ml_api.errors import ModelError
from ml_api.tools.prepare import install_reranker, onnx_twin


@pytest.fixture
def slot(tmp_path: Path) -> Path:
    out = tmp_path / "reranker"
    install_reranker(str(RERANK_DIR), out)
    return out


def test_the_twin_is_exported_once_and_served_by_slim_only(slot: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert onnx_twin(slot) == f"{slot / 'onnx'}: exported to ONNX (the slim variant serves it)"
    manifest = json.loads((slot / "onnx" / "manifest.json").read_text())
    assert manifest["kind"] == "reranker" and manifest["format"] == "onnx"
    assert (slot / "onnx" / registry.ONNX_FILE).is_file()
    assert onnx_twin(slot) == f"{slot / 'onnx'}: present (the slim variant serves it)"
    assert registry.resolve_reranker(str(slot)) == slot  # full: the checkpoint, through FlagReranker
    monkeypatch.setattr(registry, "torch_available", lambda: False)
    assert registry.resolve_reranker(str(slot)) == slot / "onnx"  # slim: the twin


def test_slim_without_a_twin_still_refuses_the_checkpoint(slot: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "torch_available", lambda: False)
    with pytest.raises(ModelError, match="slim variant"):
        registry.resolve_reranker(str(slot))


def test_no_twin_for_an_onnx_slot(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "reranker", "format": "onnx"}))
    assert onnx_twin(tmp_path) is None
