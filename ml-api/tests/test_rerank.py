"""/rerank: TEI shape, scores identical to FlagReranker.compute_score on the same checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import RERANK_DIR

QUERY = "what is panda?"
TEXTS = [
    "Paris is the capital of France.",
    "The giant panda is a bear species endemic to China.",
    "hi",
    "Pandas eat bamboo. " * 200,  # longer than 512 tokens: truncated the way FlagReranker does
]


@pytest.fixture(scope="module")
def flag_scores() -> list[float]:
    from FlagEmbedding import FlagReranker

    reranker = FlagReranker(str(RERANK_DIR), use_fp16=False, devices="cpu")
    return reranker.compute_score([[QUERY, t] for t in TEXTS], normalize=False)


def test_scores_match_flagreranker(http, flag_scores) -> None:
    res = http.post("/rerank", json={"query": QUERY, "texts": TEXTS, "raw_scores": True})
    assert res.status_code == 200, res.text
    by_index = {item["index"]: item["score"] for item in res.json()}
    assert sorted(by_index) == list(range(len(TEXTS)))
    for i, expected in enumerate(flag_scores):
        assert by_index[i] == pytest.approx(expected, abs=1e-4)


def test_order_and_sigmoid(http) -> None:
    items = http.post("/rerank", json={"query": QUERY, "texts": TEXTS[:2], "return_text": True}).json()
    assert [i["index"] for i in items] == [1, 0]  # the panda sentence wins
    assert items[0]["text"] == TEXTS[1]
    raw = {
        i["index"]: i["score"]
        for i in http.post("/rerank", json={"query": QUERY, "texts": TEXTS[:2], "raw_scores": True}).json()
    }
    for item in items:
        assert 0 < item["score"] < 1
        assert item["score"] == pytest.approx(1 / (1 + math.exp(-raw[item["index"]])), abs=1e-6)


def test_top_n_and_no_text_by_default(http) -> None:
    items = http.post("/rerank", json={"query": QUERY, "texts": TEXTS, "top_n": 2}).json()
    assert len(items) == 2 and "text" not in items[0]
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)


def test_truncate_false_refuses_long_pair(http) -> None:
    res = http.post("/rerank", json={"query": QUERY, "texts": TEXTS, "truncate": False})
    assert res.status_code == 413 and "text 3" in res.json()["error"]


def test_scores_do_not_depend_on_batch_company(http) -> None:
    alone = http.post("/rerank", json={"query": QUERY, "texts": [TEXTS[1]], "raw_scores": True}).json()[0]["score"]
    crowd = http.post("/rerank", json={"query": QUERY, "texts": TEXTS, "raw_scores": True}).json()
    assert alone == pytest.approx(next(i["score"] for i in crowd if i["index"] == 1), abs=1e-4)
    assert np.isfinite([i["score"] for i in crowd]).all()
