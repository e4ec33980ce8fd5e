"""The Qdrant stand-in over raw HTTP: Qdrant's envelope and error shapes, the API key, persistence, a clean stop.

What the backend's store gets out of it (and what it leaves unproven) is tested in backend/tests/test_store_cluster.py.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

pytest.importorskip("qdrant_client")  # the stand-in runs in backend/.venv, where `make test-devtools` runs it

from devharness import Service
from devharness.qdrant_standin import start_standin

COLLECTION = {
    "vectors": {"dense": {"size": 2, "distance": "Cosine"}},
    "sparse_vectors": {"bm25": {"modifier": "idf"}},
    "shard_number": 2,
    "replication_factor": 2,
}
POINTS = {
    "points": [
        {"id": 1, "vector": {"dense": [1.0, 0.0], "bm25": {"indices": [7], "values": [1.0]}}, "payload": {"k": "a"}},
        {"id": 2, "vector": {"dense": [0.0, 1.0]}, "payload": {"k": "b"}},
    ]
}


def stopped_cleanly(service: Service) -> bool:
    code = service.stop(10)
    return code in (0, -signal.SIGTERM) and "qdrant stand-in stopped" in service.output()


def test_routes_answer_in_qdrants_shapes(tmp_path: Path) -> None:
    service = start_standin(tmp_path / "standin.log", record=tmp_path / "created.jsonl")
    try:
        with httpx.Client(base_url=service.url, timeout=10) as c:
            assert c.get("/").json()["title"].startswith("qdrant")
            assert c.get("/readyz").status_code == 200
            created = c.put("/collections/t", json=COLLECTION).json()
            assert created["status"] == "ok" and created["result"] is True and isinstance(created["time"], float)
            assert c.get("/collections/t/exists").json()["result"] == {"exists": True}
            params = c.get("/collections/t").json()["result"]["config"]["params"]
            assert (params["shard_number"], params["replication_factor"]) == (2, 2)  # echoed, not acted on
            assert c.put("/collections/t/points", params={"wait": "true"}, json=POINTS).json()["result"]["status"]
            only_a = {"filter": {"must": [{"key": "k", "match": {"value": "a"}}]}}
            assert c.post("/collections/t/points/count", json=only_a).json()["result"] == {"count": 1}
            batch = {"searches": [{"query": [0.0, 1.0], "using": "dense", "limit": 1, "with_payload": True}]}
            (hits,) = c.post("/collections/t/points/query/batch", json=batch).json()["result"]
            assert [(p["id"], p["payload"]) for p in hits["points"]] == [(2, {"k": "b"})]
            assert c.post("/collections/t/points/delete", json={"points": [2]}).status_code == 200
            assert c.post("/collections/t/points/count", json={}).json()["result"] == {"count": 1}

            missing = c.post("/collections/nope/points/count", json={})
            assert missing.status_code == 404
            assert missing.json()["status"] == {"error": "Not found: Collection `nope` doesn't exist!"}
            again = c.put("/collections/t", json=COLLECTION)
            assert again.status_code == 409 and "already exists" in again.json()["status"]["error"]
            bad = c.put("/collections/u", content=b"{not json")
            assert bad.status_code == 400 and bad.json()["status"]["error"].startswith("Format error in JSON body")
            extra = c.put("/collections/u", json={**COLLECTION, "no_such_field": 1})
            assert extra.status_code == 400  # Qdrant's models forbid unknown fields, so does the stand-in
            assert c.post("/collections/t/points/scroll", json={}).status_code == 501  # not served: says so

            recorded = c.get("/_standin/requests").json()["create_collection"]
            assert [(r["collection"], r["body"] == COLLECTION) for r in recorded] == [
                ("t", True), ("t", True), ("u", False), ("u", False),
            ]  # fmt: skip
            stats = c.get("/_standin/stats").json()
            assert stats["requests"]["create_collection"] == 4 and stats["busy_s"] > 0
            assert c.delete("/collections/t").json()["result"] is True
            assert c.get("/collections").json()["result"] == {"collections": []}
    finally:
        assert stopped_cleanly(service), service.tail()
    lines = (tmp_path / "created.jsonl").read_text().splitlines()
    assert [json.loads(line)["collection"] for line in lines] == ["t", "t", "u", "u"]
    assert "Traceback" not in service.output() and "Payload indexes" not in service.output()


def test_api_key_like_qdrant(tmp_path: Path) -> None:
    service = start_standin(tmp_path / "standin.log", api_key="s3cret")
    try:
        with httpx.Client(base_url=service.url, timeout=10) as c:
            assert c.get("/healthz").status_code == 200  # open, as on Qdrant
            assert c.get("/collections").status_code == 401
            assert c.get("/collections", headers={"api-key": "wrong"}).status_code == 403
            assert c.get("/collections", headers={"api-key": "s3cret"}).status_code == 200
            assert c.get("/collections", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        assert stopped_cleanly(service), service.tail()


def test_path_storage_survives_a_restart(tmp_path: Path) -> None:
    first = start_standin(tmp_path / "first.log", path=tmp_path / "data")
    try:
        with httpx.Client(base_url=first.url, timeout=10) as c:
            c.put("/collections/kept", json=COLLECTION).raise_for_status()
            c.put("/collections/kept/points", json=POINTS).raise_for_status()
    finally:
        assert stopped_cleanly(first), first.tail()
    second = start_standin(tmp_path / "second.log", path=tmp_path / "data")
    try:
        with httpx.Client(base_url=second.url, timeout=10) as c:
            assert c.post("/collections/kept/points/count", json={}).json()["result"] == {"count": 2}
    finally:
        assert stopped_cleanly(second), second.tail()
