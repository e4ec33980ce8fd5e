"""Qdrant cluster settings in the server store, and the Qdrant stand-in the multi-process tests share.

No Qdrant server can run on these machines, so these tests talk to devharness's Qdrant stand-in
(``python -m devharness.qdrant_standin``): Qdrant's REST routes, the ones qdrant-client calls for the store, served
by one process over qdrant-client's local mode. They prove what the store sends (the create-collection body with
``shard_number``, ``replication_factor`` and ``write_consistency_factor``, or without them), that it reads the
stand-in's 404 and 409 as Qdrant's, and that separate clients and processes share one store through it; the
whole store suite also runs through it (tests/test_store.py, "qdrant-http"). Left unproven: a real cluster's
sharding, replication, write consistency and failover, which the stand-in records and otherwise ignores.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx
import pytest
from devharness.qdrant_standin import start_standin
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse
from test_store import DIM, bm25_req, chunk, dense_req, docs_of, search1, unit

from rag_backend.store import QdrantServerStore, StoreError, open_store

pytestmark = pytest.mark.anyio

CLUSTER = {"shard_number": 3, "replication_factor": 2, "write_consistency_factor": 2}


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in for this module, on local mode's files; it must stop cleanly on SIGTERM."""
    tmp = tmp_path_factory.mktemp("qdrant-standin")
    service = start_standin(tmp / "standin.log", path=tmp / "data", record=tmp / "created.jsonl")
    yield service.url
    service.stop(10)
    assert "qdrant stand-in stopped" in service.output() and "Traceback" not in service.output(), service.tail()
    recorded = [json.loads(line) for line in (tmp / "created.jsonl").read_text().splitlines()]
    assert recorded and all({"collection", "body", "query"} <= entry.keys() for entry in recorded)


@pytest.fixture
async def raw(standin: str) -> AsyncIterator[AsyncQdrantClient]:
    """qdrant-client straight at the stand-in: to act behind the store's back."""
    client = AsyncQdrantClient(url=standin, check_compatibility=False)
    yield client
    await client.close()


async def standin_get(url: str, path: str) -> Any:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return (await client.get(path)).raise_for_status().json()


async def create_requests(url: str, space: str) -> list[dict[str, Any]]:
    """The bodies of every create-collection request the stand-in received for ``space``."""
    created = (await standin_get(url, "/_standin/requests"))["create_collection"]
    return [entry["body"] for entry in created if entry["collection"] == space]


@pytest.mark.parametrize("factory", ["from_url", "open_store"])
async def test_collections_are_created_with_the_cluster_settings(
    standin: str, raw: AsyncQdrantClient, tmp_path: Path, factory: str, caplog: pytest.LogCaptureFixture
) -> None:
    space = f"cluster_{factory}"
    if factory == "from_url":
        store = QdrantServerStore.from_url(standin, **CLUSTER)
    else:
        store = open_store(qdrant_url=standin, qdrant_api_key=None, data_dir=tmp_path, **CLUSTER)
        assert isinstance(store, QdrantServerStore)
    try:
        await store.ensure_space(space, DIM)
        await store.ensure_space(space, DIM)  # exists now: not created again
    finally:
        await store.close()
    (body,) = await create_requests(standin, space)
    assert {k: body.get(k) for k in CLUSTER} == CLUSTER
    assert body["vectors"] == {"dense": {"size": DIM, "distance": "Cosine"}}
    assert body["sparse_vectors"] == {"bm25": {"modifier": "idf"}}
    params = (await raw.get_collection(space)).config.params  # the stand-in echoes them, as a server would
    assert (params.shard_number, params.replication_factor, params.write_consistency_factor) == (3, 2, 2)
    assert "not the configured" not in caplog.text


async def test_without_cluster_settings_none_are_sent(standin: str, tmp_path: Path) -> None:
    store = open_store(qdrant_url=standin, qdrant_api_key=None, data_dir=tmp_path)
    try:
        await store.ensure_space("plain", DIM)
    finally:
        await store.close()
    (body,) = await create_requests(standin, "plain")
    assert set(body) == {"vectors", "sparse_vectors"}  # the server's defaults apply


async def test_embedded_store_ignores_the_cluster_settings(tmp_path: Path) -> None:
    store = open_store(qdrant_url=None, qdrant_api_key=None, data_dir=tmp_path, **CLUSTER)
    try:
        await store.ensure_space("edge", DIM)
        assert store.kind == "qdrant-edge"
    finally:
        await store.close()


async def test_existing_collection_keeps_its_settings_and_a_mismatch_is_logged(
    standin: str, raw: AsyncQdrantClient, caplog: pytest.LogCaptureFixture
) -> None:
    await raw.create_collection(
        "older",
        vectors_config={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        shard_number=1,
        replication_factor=1,
    )
    caplog.set_level(logging.WARNING, logger="rag_backend.store")
    store = QdrantServerStore.from_url(standin, **CLUSTER)
    try:
        await store.ensure_space("older", DIM)
        await store.upsert("older", [chunk("c", "d", "still usable")])
        assert await store.count("older", "c") == 1
    finally:
        await store.close()
    assert len(await create_requests(standin, "older")) == 1  # only the raw client's
    (warning,) = [r.getMessage() for r in caplog.records if "not the configured" in r.getMessage()]
    assert "shard_number=1, replication_factor=1" in warning and "shard_number=3, replication_factor=2" in warning


@pytest.mark.parametrize(
    "settings",
    [
        {"shard_number": 0},
        {"replication_factor": True},
        {"write_consistency_factor": 1.5},
        {"replication_factor": 2, "write_consistency_factor": 3},
    ],
)
def test_invalid_cluster_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"shard_number|replication_factor|write_consistency_factor"):
        QdrantServerStore.from_url("http://127.0.0.1:6333", **settings)


async def test_stand_in_answers_the_store_like_qdrant(raw: AsyncQdrantClient, standin: str) -> None:
    """The store reads the stand-in's 404 (a collection dropped behind its back) and 409 (a lost creation race)
    the way it reads Qdrant's."""
    store = QdrantServerStore.from_url(standin)
    try:
        await store.ensure_space("dropped", DIM)
        await store.upsert("dropped", [chunk("c", "d", "soon gone")])
        await raw.delete_collection("dropped")
        assert await store.search_batch("dropped", [dense_req(unit(0), "c"), bm25_req("gone", "c")]) == [[], []]
        assert await store.count("dropped", "c") == 0
        await store.delete_document("dropped", "c", "d")
        with pytest.raises(StoreError, match="ensure_space"):
            await store.upsert("dropped", [chunk("c", "d", "nowhere to go")])

        racers = [QdrantServerStore.from_url(standin) for _ in range(4)]
        await asyncio.gather(*(r.ensure_space("raced", DIM) for r in racers))
        await asyncio.gather(*(r.close() for r in racers))
        assert len(await create_requests(standin, "raced")) >= 1
        with pytest.raises(UnexpectedResponse) as lost:  # what a racer that lost gets, and the store tolerates
            await raw.create_collection("raced", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
        assert lost.value.status_code == 409
        stats = await standin_get(standin, "/_standin/stats")
        assert stats["requests"].get("unsupported", 0) == 0  # the store used no route the stand-in lacks
    finally:
        await store.close()


async def test_same_results_as_local_mode_directly(standin: str) -> None:
    """The same points and queries through HTTP and through qdrant-client's local mode in-process: same hits,
    same order, same scores (the stand-in is local mode, so anything else would be a translation fault)."""
    points = [chunk("c", f"d{i % 4}", f"word{i % 5} shared text {i}", unit(i % DIM), position=i) for i in range(40)]
    points += [chunk("other", "x", "word1 word1 elsewhere", unit(1))]
    reqs = [
        dense_req(unit(2), "c", limit=5),
        dense_req([0.5] * DIM, "c", limit=7, exclude_document_ids=["d1"]),
        bm25_req("word3 text", "c", limit=6),
        bm25_req("word1", "c", limit=10, document_ids=["d1", "d2"]),
    ]
    results = []
    for store in (QdrantServerStore.from_url(standin), QdrantServerStore(AsyncQdrantClient(location=":memory:"))):
        try:
            await store.ensure_space("same", DIM)
            await store.upsert("same", points)
            await store.delete_document("same", "c", "d3")
            results.append((await store.search_batch("same", reqs), await store.count("same", "c")))
        finally:
            await store.close()
    (http_hits, http_count), (local_hits, local_count) = results
    assert http_count == local_count == 30
    assert [[(h.id, round(h.score, 5), h.payload) for h in r] for r in http_hits] == [
        [(h.id, round(h.score, 5), h.payload) for h in r] for r in local_hits
    ]


async def test_two_clients_see_each_others_writes(standin: str) -> None:
    a, b = QdrantServerStore.from_url(standin), QdrantServerStore.from_url(standin)
    try:
        await a.ensure_space("shared", DIM)
        await a.upsert("shared", [chunk("c", "from-a", f"alpha {i}", unit(1)) for i in range(3)])
        assert await b.count("shared", "c") == 3  # b never ensured the space: it finds a's
        await b.upsert("shared", [chunk("c", "from-b", "bravo", unit(2))])
        assert docs_of(await search1(a, dense_req(unit(2), "c", limit=1), "shared")) == ["from-b"]
        assert docs_of(await search1(a, bm25_req("bravo", "c"), "shared")) == ["from-b"]
        await b.delete_document("shared", "c", "from-a")
        assert await a.count("shared", "c", "from-a") == 0
        await a.delete_collection("shared", "c")
        assert await b.count("shared", "c") == 0
    finally:
        await a.close()
        await b.close()


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from test_store import DIM, chunk, unit
    from rag_backend.store import QdrantServerStore

    async def main(url, name):
        store = QdrantServerStore.from_url(url)
        try:
            await store.ensure_space("procs", DIM)  # both processes race to create it
            for batch in range(5):
                await store.upsert("procs", [chunk("c", name, f"{name} {batch} {i}", unit(i % DIM)) for i in range(40)])
            print(await store.count("procs", "c"))
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_processes_share_one_store(standin: str) -> None:
    names = ("north", "south")
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, standin, name, cwd=Path(__file__).parent, stdout=PIPE, stderr=PIPE
        )
        for name in names
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(w.communicate() for w in writers)), 120)
    for w, (out, err) in zip(writers, outputs, strict=True):
        assert w.returncode == 0, err.decode()
        assert 200 <= int(out) <= 400  # its own 200 and whatever the other had written by then
    store = QdrantServerStore.from_url(standin)
    try:
        assert [await store.count("procs", "c", name) for name in names] == [200, 200]
        for name in names:
            assert docs_of(await search1(store, bm25_req(name, "c", limit=500), "procs")) == [name] * 200
    finally:
        await store.close()
