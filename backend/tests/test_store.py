"""Behavioural tests of the vector store, run against both implementations.

"qdrant-local" is ``QdrantServerStore`` over ``AsyncQdrantClient(location=":memory:")``: qdrant-client's local
mode stands in for a Qdrant server here (same client API, no server process needed). "qdrant-http" is
``QdrantServerStore.from_url`` against devharness's Qdrant stand-in (local mode behind Qdrant's REST routes in a
process of its own): the same assertions through real HTTP, as the multi-process tests use the store.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
import qdrant_edge as qe
from devharness.qdrant_standin import start_standin
from qdrant_client import AsyncQdrantClient

from rag_backend.store import (
    ChunkPoint,
    DimensionMismatch,
    EdgeStore,
    Hit,
    QdrantServerStore,
    SearchFilter,
    SearchRequest,
    StoreError,
    VectorStore,
    open_store,
)

pytestmark = pytest.mark.anyio

DIM = 8
SPACE = "docs_8"
BM25 = qe.Bm25()


@pytest.fixture(scope="session")
def qdrant_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Qdrant stand-in for the session, emptied before each test that uses it."""
    service = start_standin(tmp_path_factory.mktemp("qdrant-standin") / "standin.log")
    yield service.url
    service.stop(10)


def emptied(url: str) -> str:
    with httpx.Client(base_url=url, timeout=10) as c:
        for coll in c.get("/collections").raise_for_status().json()["result"]["collections"]:
            c.delete(f"/collections/{coll['name']}").raise_for_status()
    return url


@pytest.fixture(params=["edge", "qdrant-local", "qdrant-http"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[VectorStore]:
    s: VectorStore
    if request.param == "edge":
        s = EdgeStore(tmp_path / "qdrant")
    elif request.param == "qdrant-local":
        s = QdrantServerStore(AsyncQdrantClient(location=":memory:"))
    else:
        s = QdrantServerStore.from_url(emptied(request.getfixturevalue("qdrant_standin")))
    await s.ensure_space(SPACE, DIM)
    try:
        yield s
    finally:
        await s.close()


def unit(i: int, dim: int = DIM) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[i] = 1.0
    return v


def chunk(
    collection: str,
    document_id: str,
    text: str,
    dense: Sequence[float] | np.ndarray | None = None,
    *,
    source: str = "a.txt",
    position: int = 0,
) -> ChunkPoint:
    sparse = BM25.embed_document(text)
    return ChunkPoint(
        id=str(uuid.uuid4()),
        dense=unit(0) if dense is None else dense,
        sparse_indices=sparse.indices,
        sparse_values=sparse.values,
        payload={
            "collection": collection,
            "document_id": document_id,
            "text": text,
            "source": source,
            "position": position,
        },
    )


def dense_req(
    vec: Sequence[float] | np.ndarray, collection: str | Sequence[str], limit: int = 10, **flt: Sequence[str]
) -> SearchRequest:
    return SearchRequest(using="dense", dense=vec, limit=limit, filter=SearchFilter(collections=collection, **flt))


def bm25_req(text: str, collection: str | Sequence[str], limit: int = 10, **flt: Sequence[str]) -> SearchRequest:
    q = BM25.embed_query(text)
    return SearchRequest(
        using="bm25", sparse=(q.indices, q.values), limit=limit, filter=SearchFilter(collections=collection, **flt)
    )


async def search1(store: VectorStore, req: SearchRequest, space: str = SPACE) -> list[Hit]:
    (hits,) = await store.search_batch(space, [req])
    return hits


def docs_of(hits: Sequence[Hit]) -> list[str]:
    return [h.payload["document_id"] for h in hits]


# ----------------------------------------------------------------------------------------------------------------
# Both implementations
# ----------------------------------------------------------------------------------------------------------------


async def test_dense_search_ranks_nearest_first_with_payload(store: VectorStore) -> None:
    points = [chunk("c", f"d{i}", f"text number {i}", unit(i), position=i) for i in range(4)]
    await store.upsert(SPACE, points)
    query = 0.9 * unit(2) + 0.3 * unit(1)
    hits = await search1(store, dense_req(query.tolist(), "c"))
    assert docs_of(hits)[:2] == ["d2", "d1"]
    assert len(hits) == 4
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].id == points[2].id and isinstance(hits[0].id, str)
    assert hits[0].payload == points[2].payload  # full payload, no vectors
    assert hits[0].score == pytest.approx(0.9 / np.hypot(0.9, 0.3), abs=1e-4)


async def test_bm25_stemming_and_collection_scoped_idf(store: VectorStore) -> None:
    await store.upsert(
        SPACE,
        [
            chunk("c", "fox", "The quick brown foxes jumped over the lazy dog"),
            chunk("c", "r1", "river bank"),
            chunk("c", "r2", "river flow"),
            chunk("c", "r3", "river stone"),
            chunk("c", "common", "river crossing"),
            chunk("c", "rare", "zebra crossing"),
            # "zebra" is everywhere in another collection of the same space: must not make it common in "c"
            *(chunk("other", f"z{i}", f"zebra herd {i}") for i in range(8)),
        ],
    )
    assert docs_of(await search1(store, bm25_req("fox", "c"))) == ["fox"]
    hits = await search1(store, bm25_req("river zebra", "c"))
    assert hits[0].payload["document_id"] == "rare"
    assert hits[0].score > hits[1].score
    assert set(docs_of(hits)) == {"rare", "common", "r1", "r2", "r3"}
    assert await search1(store, bm25_req("unicorn", "c")) == []


async def test_collection_isolation(store: VectorStore) -> None:
    await store.upsert(SPACE, [chunk("a", "doc", "shared words here", unit(1)) for _ in range(2)])
    await store.upsert(SPACE, [chunk("b", "doc", "shared words here", unit(1)) for _ in range(3)])
    for collection, n in (("a", 2), ("b", 3)):
        dense_hits, bm25_hits = await store.search_batch(
            SPACE, [dense_req(unit(1), collection), bm25_req("shared", collection)]
        )
        assert len(dense_hits) == n and len(bm25_hits) == n
        assert {h.payload["collection"] for h in dense_hits + bm25_hits} == {collection}
        assert await store.count(SPACE, collection) == n
        assert await store.count(SPACE, collection, "doc") == n
    assert await search1(store, dense_req(unit(1), "nope")) == []


async def test_a_collection_set_is_filtered_inside_the_query(store: VectorStore) -> None:
    """Several collections in one search: the set is part of the engine's query, not a filter of its top-k. "b" holds
    the best match of both searches; limited to {"a", "c"} with limit 1, a post-filter of the global top-1 would
    answer nothing, the engine answers a's best."""
    await store.upsert(
        SPACE,
        [
            chunk("b", "secret", "zebra zebra zebra stripes", unit(1)),
            *(chunk("b", f"b{i}", f"zebra herd {i}", 0.95 * unit(1) + 0.3 * unit(3)) for i in range(5)),
            chunk("a", "near", "zebra crossing stripes in town", 0.8 * unit(1) + 0.6 * unit(2)),
            chunk("a", "far", "a quiet street", unit(2)),
            chunk("c", "other", "zebra mussels", unit(3)),
        ],
    )
    for make in (lambda names, k: dense_req(unit(1), names, k), lambda names, k: bm25_req("zebra stripes", names, k)):
        assert docs_of(await search1(store, make(["a", "b", "c"], 1))) == ["secret"]  # the global best is b's
        assert docs_of(await search1(store, make(["c", "a"], 1))) == ["near"]  # order of the names is irrelevant
        hits = await search1(store, make(["a", "c"], 10))
        assert {h.payload["collection"] for h in hits} <= {"a", "c"} and "near" in docs_of(hits)
        assert not {"secret", *(f"b{i}" for i in range(5))} & set(docs_of(hits))
        assert docs_of(await search1(store, make(["a", "a"], 1))) == ["near"]  # duplicates count once
        assert await search1(store, make(["nope", "none"], 5)) == []
    # BM25's IDF is scoped to the searched set: "zebra" everywhere in b does not make it common for {a, c}, and
    # adding to b (a collection the caller may not read) changes none of their scores.
    before = await search1(store, bm25_req("zebra crossing", ["a", "c"]))
    await store.upsert(SPACE, [chunk("b", f"more{i}", f"zebra crossing {i}", unit(1)) for i in range(20)])
    after = await search1(store, bm25_req("zebra crossing", ["a", "c"]))
    assert [(h.id, round(h.score, 5)) for h in after] == [(h.id, round(h.score, 5)) for h in before]
    with_b = await search1(store, bm25_req("zebra crossing", ["a", "b", "c"], 50))
    assert {h.id: h.score for h in with_b}[before[0].id] != pytest.approx(before[0].score)  # b's terms count there


def test_an_empty_collection_set_is_refused_never_all() -> None:
    for empty in ([], (), ""):
        with pytest.raises(ValueError, match="one or more collection names"):
            SearchFilter(collections=empty)
    assert SearchFilter(collections="a").collections == ("a",)
    assert SearchFilter(collections=["b", "a", "b"]).collections == ("a", "b")


async def test_filters(store: VectorStore) -> None:
    await store.upsert(
        SPACE,
        [
            chunk("c", "d1", "alpha report", unit(1), source="one.pdf"),
            chunk("c", "d2", "alpha memo", unit(1), source="two.pdf"),
            chunk("c", "d3", "alpha notes", unit(1), source="two.pdf"),
        ],
    )
    for make in (lambda **f: dense_req(unit(1), "c", **f), lambda **f: bm25_req("alpha", "c", **f)):
        assert sorted(docs_of(await search1(store, make()))) == ["d1", "d2", "d3"]
        assert sorted(docs_of(await search1(store, make(exclude_document_ids=["d2"])))) == ["d1", "d3"]
        assert sorted(docs_of(await search1(store, make(document_ids=["d2", "d3"])))) == ["d2", "d3"]
        assert sorted(docs_of(await search1(store, make(sources=["two.pdf"])))) == ["d2", "d3"]
        combined = make(sources=["two.pdf"], exclude_document_ids=["d3"], document_ids=["d1", "d2", "d3"])
        assert docs_of(await search1(store, combined)) == ["d2"]


async def test_delete_document(store: VectorStore) -> None:
    await store.upsert(SPACE, [chunk("c", "gone", f"doomed chunk {i}", unit(2), position=i) for i in range(3)])
    await store.upsert(SPACE, [chunk("c", "kept", "surviving chunk", unit(2))])
    await store.upsert(SPACE, [chunk("other", "gone", "same document id elsewhere", unit(2))])
    assert await store.count(SPACE, "c", "gone") == 3

    await store.delete_document(SPACE, "c", "gone")

    assert await store.count(SPACE, "c", "gone") == 0
    assert await store.count(SPACE, "c", "kept") == 1
    assert await store.count(SPACE, "other", "gone") == 1  # same document id in another collection untouched
    dense_hits, bm25_hits = await store.search_batch(SPACE, [dense_req(unit(2), "c"), bm25_req("chunk", "c")])
    assert docs_of(dense_hits) == ["kept"] and docs_of(bm25_hits) == ["kept"]
    await store.delete_document(SPACE, "c", "never-existed")  # no-op


async def test_delete_collection(store: VectorStore) -> None:
    await store.upsert(SPACE, [chunk("a", f"d{i}", "to be removed", unit(3)) for i in range(4)])
    await store.upsert(SPACE, [chunk("b", "d0", "to be kept", unit(3))])
    await store.delete_collection(SPACE, "a")
    assert await store.count(SPACE, "a") == 0
    assert await store.count(SPACE, "b") == 1
    assert await search1(store, dense_req(unit(3), "a")) == []
    assert docs_of(await search1(store, bm25_req("kept", "b"))) == ["d0"]


async def test_count_is_exact_and_upsert_overwrites(store: VectorStore) -> None:
    rng = np.random.default_rng(7)
    points = [chunk("c", f"d{i % 5}", f"chunk {i}", rng.standard_normal(DIM).astype(np.float32)) for i in range(37)]
    await store.upsert(SPACE, points)
    assert await store.count(SPACE, "c") == 37
    assert await store.count(SPACE, "c", "d0") == 8
    assert await store.count(SPACE, "c", "d9") == 0
    # Same id again replaces the point (vectors and payload), it does not add one.
    old = points[0]
    new = ChunkPoint(old.id, unit(5), [], [], {**old.payload, "text": "rewritten"})
    await store.upsert(SPACE, [new])
    await store.upsert(SPACE, [])
    assert await store.count(SPACE, "c") == 37
    top = (await search1(store, dense_req(unit(5), "c", limit=1)))[0]
    assert top.id == old.id and top.payload["text"] == "rewritten"


async def test_ensure_space_idempotent_and_dimension_mismatch(store: VectorStore) -> None:
    await store.upsert(SPACE, [chunk("c", "d", "still here")])
    await store.ensure_space(SPACE, DIM)
    assert await store.count(SPACE, "c") == 1
    with pytest.raises(DimensionMismatch, match="dim"):
        await store.ensure_space(SPACE, DIM + 1)
    with pytest.raises(DimensionMismatch):
        await store.upsert(SPACE, [chunk("c", "d", "wrong dim", [1.0, 0.0, 0.0])])
    with pytest.raises(DimensionMismatch):
        await store.search_batch(SPACE, [dense_req([1.0, 0.0], "c")])
    await asyncio.gather(*(store.ensure_space("second_space", 4) for _ in range(3)))  # concurrent creation
    await store.upsert("second_space", [chunk("c", "d", "small", [0.0, 1.0, 0.0, 0.0])])
    assert await store.count("second_space", "c") == 1
    assert await store.count(SPACE, "c") == 1


async def test_unknown_space_behaves_empty(store: VectorStore) -> None:
    reqs = [dense_req(unit(0), "c"), bm25_req("anything", "c")]
    assert await store.search_batch("missing", reqs) == [[], []]
    assert await store.count("missing", "c") == 0
    assert await store.count("missing", "c", "d") == 0
    await store.delete_document("missing", "c", "d")
    await store.delete_collection("missing", "c")
    with pytest.raises(StoreError, match="ensure_space"):
        await store.upsert("missing", [chunk("c", "d", "text")])
    assert await store.count("missing", "c") == 0  # still not created by any of the above
    for bad in ("", "../escape", "a/b", "x" * 65, "space name"):
        with pytest.raises(ValueError):
            await store.search_batch(bad, reqs)
        with pytest.raises(ValueError):
            await store.ensure_space(bad, DIM)


async def test_search_batch_one_list_per_request_in_order(store: VectorStore) -> None:
    await store.upsert(SPACE, [chunk("c", f"d{i}", f"topic{i} words", unit(i)) for i in range(4)])
    empty = SearchRequest(using="bm25", sparse=([], []), filter=SearchFilter("c"))
    reqs = [
        dense_req(unit(3), "c", limit=1),
        bm25_req("topic1", "c"),
        empty,
        dense_req(unit(0), "c", limit=2),
        bm25_req("the a of", "c"),  # only stopwords: no tokens at all
        bm25_req("topic2", "c"),
    ]
    results = await store.search_batch(SPACE, reqs)
    assert [docs_of(r)[:1] for r in results] == [["d3"], ["d1"], [], ["d0"], [], ["d2"]]
    assert len(results[3]) == 2
    assert await store.search_batch(SPACE, [empty]) == [[]]
    assert await store.search_batch(SPACE, []) == []


async def test_health_ok(store: VectorStore) -> None:
    ok, detail = await store.health()
    assert ok, detail
    assert store.kind in ("qdrant-edge", "qdrant")
    assert isinstance(store, VectorStore)


# ----------------------------------------------------------------------------------------------------------------
# Edge only
# ----------------------------------------------------------------------------------------------------------------


async def test_edge_data_persists_across_reopen(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path)
    await first.ensure_space(SPACE, DIM)
    points = [chunk("c", "d", f"persistent chunk {i}", unit(i)) for i in range(3)]
    await first.upsert(SPACE, points)
    await first.close()
    await first.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await first.count(SPACE, "c")
    assert (tmp_path / SPACE / "edge_config.json").is_file()

    second = EdgeStore(tmp_path)
    try:
        assert await second.count(SPACE, "c") == 3  # loaded on first use, without ensure_space
        assert docs_of(await search1(second, bm25_req("persistent", "c"))) == ["d"] * 3
        assert (await search1(second, dense_req(unit(1), "c", limit=1)))[0].id == points[1].id
        await second.ensure_space(SPACE, DIM)
        with pytest.raises(DimensionMismatch):
            await second.ensure_space(SPACE, 16)
    finally:
        await second.close()


def assert_same_results(got: list[list[Hit]], expected: list[list[Hit]]) -> None:
    """Same hits, order and scores; only hits with equal scores (BM25 ties) may come in another order."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert [h.score for h in g] == pytest.approx([h.score for h in e], rel=1e-4)
        for hg, he in zip(g, e, strict=True):
            tied = sum(1 for h in e if math.isclose(h.score, he.score, rel_tol=1e-4))
            at_cutoff = math.isclose(he.score, e[-1].score, rel_tol=1e-4)  # more of that score beyond the limit
            if tied == 1 and not at_cutoff:
                assert hg.id == he.id


async def _fill(store: EdgeStore, n: int, dim: int, batch: int = 500) -> np.ndarray:
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    for start in range(0, n, batch):
        await store.upsert(
            "big",
            [
                chunk("c", f"d{i % 50}", f"{words[i % 8]} {words[i % 7]} item{i}", vectors[i], position=i)
                for i in range(start, min(n, start + batch))
            ],
        )
    return vectors


async def test_edge_optimize_builds_index_and_searches_keep_working(tmp_path: Path) -> None:
    n, dim = 3000, 32
    store = EdgeStore(tmp_path, optimize_after_points=0, indexing_threshold_kb=100)  # no auto optimize here
    try:
        await store.ensure_space("big", dim)
        vectors = await _fill(store, n, dim)
        before_info = await store.info("big")
        assert before_info is not None and before_info["points"] == n
        assert before_info["indexed_vectors"] < 2 * n  # dense vectors not HNSW-indexed yet

        reqs = [dense_req(vectors[i] + 0.05, "c", limit=5) for i in range(0, n, 300)]
        reqs += [bm25_req("charlie item42", "c", limit=5), bm25_req("golf", "c", limit=5, document_ids=["d7"])]
        before = await store.search_batch("big", reqs)

        task = asyncio.create_task(store.optimize("big"))
        await asyncio.sleep(0)
        assert store.optimizing("big")
        during = await asyncio.gather(*(store.search_batch("big", reqs) for _ in range(8)))
        assert await task is True

        after_info = await store.info("big")
        assert after_info is not None and after_info["points"] == n
        assert after_info["indexed_vectors"] >= 2 * n  # dense HNSW + sparse index over every point
        after = await store.search_batch("big", reqs)
        assert_same_results(after, before)
        for result in during:
            assert_same_results(result, before)
        assert await store.optimize("big") is False  # nothing left to do
        assert await store.optimize("unknown") is False
    finally:
        await store.close()


async def test_edge_auto_optimize_is_debounced_and_close_waits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rag_backend.store")
    n, dim = 2000, 32
    store = EdgeStore(tmp_path, optimize_after_points=1000, optimize_debounce_s=0.3, indexing_threshold_kb=100)
    try:
        await store.ensure_space("big", dim)
        started = time.monotonic()
        await _fill(store, n, dim, batch=250)  # crosses the threshold mid-way; upserts never wait for the optimize
        info = await store.info("big")
        assert info is not None and info["indexed_vectors"] < 2 * n  # still within the debounce window
        while store.optimizing("big") or ((info := await store.info("big")) or {})["indexed_vectors"] < 2 * n:
            assert time.monotonic() - started < 10, "background optimize never ran"
            await asyncio.sleep(0.05)
        optimizes = [r for r in caplog.records if r.getMessage().startswith("optimized space 'big'")]
        assert len(optimizes) == 1, "a bulk ingest should be optimized once, after it goes quiet"
        assert "2000 new points" in optimizes[0].getMessage()

        # close() waits for a running optimize instead of closing the shard under it.
        await store.upsert("big", [chunk("c", "late", "late arrival", np.ones(dim, dtype=np.float32))])
        task = asyncio.create_task(store.optimize("big"))
        await asyncio.sleep(0.01)
    finally:
        await store.close()
    assert task.done() and not task.cancelled() and task.exception() is None

    reopened = EdgeStore(tmp_path)
    try:
        assert await reopened.count("big", "c") == n + 1
        assert docs_of(await search1(reopened, bm25_req("late arrival", "c", limit=1), "big")) == ["late"]
    finally:
        await reopened.close()


# ----------------------------------------------------------------------------------------------------------------
# Server only, and the factory
# ----------------------------------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_server_unreachable_health_is_false_quickly() -> None:
    store = QdrantServerStore.from_url(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    try:
        started = time.monotonic()
        ok, detail = await store.health()
        assert not ok
        assert "127.0.0.1" in detail
        assert time.monotonic() - started < 3
        with pytest.raises(StoreError, match=r"127\.0\.0\.1"):
            await store.ensure_space(SPACE, DIM)
    finally:
        await store.close()


async def test_open_store_picks_implementation(tmp_path: Path) -> None:
    edge = open_store(qdrant_url=None, qdrant_api_key=None, data_dir=tmp_path)
    assert isinstance(edge, EdgeStore) and edge.kind == "qdrant-edge"
    assert edge.data_dir == tmp_path / "qdrant"
    await edge.close()
    server = open_store(qdrant_url="http://127.0.0.1:6333", qdrant_api_key=None, data_dir=tmp_path, timeout_s=3)
    assert isinstance(server, QdrantServerStore) and server.kind == "qdrant"
    await server.close()
