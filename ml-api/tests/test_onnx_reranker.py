"""ONNX reranker: `add-reranker --onnx` exports, scores equal to FlagReranker's, served without torch.

The test cross-encoder is exported through the CLI once per module (fp32 and int8); every comparison is
against `FlagReranker.compute_score` or the FlagReranker-backed session server on the same checkpoint.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import RERANK_DIR, start_server, stop_server
from test_models_tool import _cli

from ml_api.device import DevicePlan
from ml_api.errors import DeviceUnavailable, ModelError
from ml_api.loading import load_reranker
from ml_api.onnx_reranker import OnnxReranker, to_fp16
from ml_api.registry import resolve_reranker
from ml_api.tools.export_reranker import rank_agreement
from ml_api.torch_reranker import Reranker

CPU = DevicePlan("cpu", ["CPUExecutionProvider"], False, "test")
BAMBOO = "Pandas eat bamboo. " * 200  # past 512 tokens: the pair is cut 'only_second'
PAIRS = [
    ("what is panda?", "The giant panda is a bear species endemic to China."),
    ("what is panda?", "Paris is the capital of France."),
    ("what is panda?", "hi"),
    ("what is panda?", BAMBOO),
    ("panda " * 500, "The giant panda is a bear."),  # the query alone is cut to 3/4 of max_length
    ("panda " * 500, BAMBOO),
    ("capital of France", "Paris is the capital of France."),
    ("capital of France", "Berlin ist die Hauptstadt Deutschlands. 🇩🇪"),
    ("capital of France", "The giant panda is a bear species endemic to China."),
    ("capital of France", "Lyon is France's third-largest city; Paris is its capital and largest city."),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """fp32 and int8 exports of the test cross-encoder, made by the CLI as a user would."""
    base = tmp_path_factory.mktemp("onnx-reranker")
    dirs = {}
    for precision, extra in (("fp32", ()), ("int8", ("--quantize", "int8"))):
        out = base / precision
        res = _cli("add-reranker", str(RERANK_DIR), "--onnx", *extra, "--out", str(out), "--name", "rr")
        assert res.returncode == 0, res.stderr[-3000:]
        assert json.loads(res.stdout)["precision"] == precision
        dirs[precision] = out
    return dirs


@pytest.fixture(scope="module")
def flag_scores() -> np.ndarray:
    from FlagEmbedding import FlagReranker

    flag = FlagReranker(str(RERANK_DIR), use_fp16=False, devices="cpu")
    return np.asarray(flag.compute_score(PAIRS, normalize=False), dtype=np.float64)


def test_export_writes_a_checked_manifest_and_dynamic_axes(exported) -> None:
    manifest = json.loads((exported["fp32"] / "manifest.json").read_text())
    expected = {"kind": "reranker", "format": "onnx", "file": "model.onnx", "precision": "fp32", "max_length": 512}
    assert manifest | expected == manifest
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    checks = manifest["checks"]
    assert checks["fp32_max_abs_diff"] < 1e-4 and checks["max_abs_diff"] == checks["fp32_max_abs_diff"]
    assert checks["rank_agreement"] == 1.0 and checks["pairs"] >= 10
    fusion = manifest["graph_fusion"]  # what made ONNX keep up with torch's fused attention in the service
    assert fusion["applied"] and fusion["fused_ops"].get("Attention") == 6, fusion
    assert {f.name for f in exported["fp32"].iterdir()} >= {"model.onnx", "tokenizer.json", "manifest.json"}
    assert not list(exported["fp32"].glob("*.safetensors"))  # the checkpoint's weights are not needed

    session = ort.InferenceSession(str(exported["fp32"] / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["batch", "sequence"]] * 3
    for batch, seq in ((1, 3), (7, 200)):
        ids = np.full((batch, seq), 2000, dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        assert session.run(None, feeds)[0].shape == (batch, 1)

    int8 = json.loads((exported["int8"] / "manifest.json").read_text())
    assert int8["precision"] == "int8" and int8["quantization"]["weight_type"] == "QInt8"
    assert int8["checks"]["fp32_max_abs_diff"] < 1e-4  # fp32 passed its tolerance before quantising
    assert int8["checks"]["rank_agreement"] >= int8["checks"]["rank_floor"]
    fp32_size = (exported["fp32"] / "model.onnx").stat().st_size
    assert (exported["int8"] / "model.onnx").stat().st_size < 0.3 * fp32_size


def test_tokenisation_is_the_torch_backends(exported) -> None:
    """Both backends share PairTokenizer; the ONNX one builds it from the saved tokenizer.json alone."""
    onnx_rr, torch_rr = OnnxReranker(exported["fp32"], CPU), Reranker(RERANK_DIR, CPU)
    assert (onnx_rr.max_length, onnx_rr.pairs.pad_id) == (torch_rr.max_length, torch_rr.pairs.pad_id)
    for truncate, cap in ((True, None), (True, 7), (False, None)):
        for query, text in PAIRS:
            if not truncate and len(query + text) > 1000:
                continue
            [a] = onnx_rr.tokenize(query, [text], truncate, cap)
            [b] = torch_rr.tokenize(query, [text], truncate, cap)
            assert a.input_ids.tolist() == b.input_ids.tolist()
            assert a.token_type_ids.tolist() == b.token_type_ids.tolist()


def test_scores_equal_compute_score(exported, flag_scores) -> None:
    reranker = OnnxReranker(exported["fp32"], CPU)
    np.testing.assert_allclose(reranker.score(PAIRS, batch_size=3), flag_scores, atol=1e-4, rtol=0)
    query, text = PAIRS[2]
    [alone] = reranker.forward(reranker.tokenize(query, [text]))  # no padding company: the same score
    assert alone == pytest.approx(flag_scores[2], abs=1e-4)


def test_int8_keeps_the_ranking(exported, flag_scores) -> None:
    """int8 moves this weak model's logits (all within -1.6..0.2) by up to ~0.25; only near-ties may swap.

    Floors: 90% of same-query passage pairs keep their order, and every pair whose FlagReranker logits are
    more than 0.2 apart keeps it (measured: 12 of 13 pairs, max |diff| 0.07, one swap at a 0.023 gap).
    """
    scores = OnnxReranker(exported["int8"], CPU).score(PAIRS)
    assert rank_agreement(flag_scores.tolist(), scores.tolist(), PAIRS) >= 0.9
    assert np.abs(scores - flag_scores).max() < 0.25
    for i, j in combinations(range(len(PAIRS)), 2):
        if PAIRS[i][0] == PAIRS[j][0] and abs(flag_scores[i] - flag_scores[j]) > 0.2:
            assert (scores[i] - scores[j]) * (flag_scores[i] - flag_scores[j]) > 0, (PAIRS[i], PAIRS[j])


@pytest.mark.filterwarnings("ignore:Specified provider .CUDAExecutionProvider.")
def test_fp16_conversion_for_cuda(exported) -> None:
    """What CUDA loads: fp16 weights, int64 ids in, float32 logits out, scores close to fp32.

    ONNX Runtime runs the fp16 graph on CPU too, so the conversion is checked here; the CUDA session itself
    only where onnxruntime-gpu sees a GPU.
    """
    model = to_fp16(exported["fp32"] / "model.onnx")
    graph = onnx.load_from_string(model).graph
    assert {t.data_type for t in graph.initializer if t.data_type in (1, 10)} == {onnx.TensorProto.FLOAT16}
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.INT64] * 3
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    fp32 = OnnxReranker(exported["fp32"], CPU)
    half = ort.InferenceSession(model, providers=["CPUExecutionProvider"])  # ONNX Runtime runs fp16 on CPU too
    batch = [p for q, t in PAIRS[:4] for p in fp32.tokenize(q, [t])]
    feeds = fp32.pairs.feeds(batch)
    np.testing.assert_allclose(half.run(None, feeds)[0].reshape(-1), fp32.forward(batch), atol=0.02)
    gpu = DevicePlan("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], True, "test")
    if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu with a GPU: the real thing
        on_gpu = OnnxReranker(exported["fp32"], gpu)
        assert (on_gpu.device, on_gpu.fp16) == ("cuda", True)
        np.testing.assert_allclose(on_gpu.forward(batch), fp32.forward(batch), atol=0.02)
    else:
        with pytest.raises(DeviceUnavailable, match="fell back"):  # refused, never silently on CPU
            OnnxReranker(exported["fp32"], gpu)


def test_served_onnx_reranker_answers_like_the_flagreranker_service(exported, server, tmp_path) -> None:
    body = {"query": "what is panda?", "texts": [t for q, t in PAIRS if q == "what is panda?"], "raw_scores": True}
    srv = start_server(tmp_path, "onnx-reranker", RERANK_MODEL=str(exported["fp32"]))
    try:
        with srv.client() as onnx_http, server.client() as flag_http:
            info = onnx_http.get("/info").json()["reranking"]
            assert (info["backend"], info["path"], info["fp16"]) == ("onnx", str(exported["fp32"]), False)
            assert flag_http.get("/info").json()["reranking"]["backend"] == "flagembedding"
            for extra in ({}, {"raw_scores": False, "top_n": 2}):
                got = onnx_http.post("/rerank", json=body | extra)
                want = flag_http.post("/rerank", json=body | extra)
                assert got.status_code == want.status_code == 200, got.text
                assert [i["index"] for i in got.json()] == [i["index"] for i in want.json()]
                for a, b in zip(got.json(), want.json(), strict=True):
                    assert a["score"] == pytest.approx(b["score"], abs=1e-4)
            long = onnx_http.post("/rerank", json={"query": "q", "texts": [BAMBOO], "truncate": False})
            assert long.status_code == 413 and "text 0" in long.json()["error"]
    finally:
        stop_server(srv)


def test_onnx_reranker_never_imports_torch(exported) -> None:
    """The slim image has no torch: choosing and running the ONNX backend must not need it."""
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from ml_api.device import DevicePlan\n"
        "from ml_api.engine import Engine\n"
        "from ml_api.loading import load_reranker\n"
        "plan = DevicePlan('cpu', ['CPUExecutionProvider'], False, 'test')\n"
        f"rr = load_reranker(Path({str(exported['int8'])!r}), plan)\n"
        "print(type(rr).__name__, rr.score([('q', 'a passage'), ('q', 'another')]).shape)\n"
        "heavy = ('torch', 'FlagEmbedding', 'transformers')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    lines = out.stdout.splitlines()
    assert lines[-2] == "OnnxReranker (2,)"
    assert json.loads(lines[-1]) == []


def test_cli_and_lookup_refusals(exported, tmp_path) -> None:
    res = _cli("add-reranker", str(RERANK_DIR), "--quantize", "int8", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "--quantize needs --onnx" in res.stderr
    res = _cli("add-reranker", str(RERANK_DIR), "--onnx", "--out", str(RERANK_DIR))
    assert res.returncode == 2 and "is the source checkpoint" in res.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(exported["fp32"] / "manifest.json", broken / "manifest.json")
    with pytest.raises(ModelError, match=r"no model\.onnx"):
        resolve_reranker(str(broken))
    assert resolve_reranker(str(exported["fp32"])) == exported["fp32"]  # no config.json needed
    assert type(load_reranker(RERANK_DIR, CPU)) is Reranker  # a Hugging Face checkpoint stays on FlagReranker
