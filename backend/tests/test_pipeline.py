"""The whole pipeline against running services: real ml-api models, embedded Qdrant engine, real Redis."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from conftest import Proc, wait_ready
from docs import BREAD_PARAGRAPHS, SOLAR, VOLCANO_PAGES, WHALES_HTML, docx_bytes, long_text, pdf_bytes

COLL = "pipeline"


def upload(client: httpx.Client, files: list[tuple[str, bytes, str]], collection: str = COLL) -> httpx.Response:
    parts = [("files", (name, data, ctype)) for name, data, ctype in files]
    return client.post("/api/documents", files=parts, data={"collection": collection})


def query(client: httpx.Client, text: str, collection: str = COLL, **kw: object) -> dict:
    r = client.post("/api/query", json={"query": text, "collection": collection, **kw})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def client(backend: Proc) -> httpx.Client:
    with backend.client() as c:
        yield c


@pytest.fixture(scope="module")
def indexed(client: httpx.Client) -> dict[str, str]:
    """Four formats in one upload; returns filename -> document id once all are ready."""
    r = upload(
        client,
        [
            ("solar.md", SOLAR.encode(), "text/markdown"),
            ("volcanoes.pdf", pdf_bytes(VOLCANO_PAGES), "application/pdf"),
            ("sourdough.docx", docx_bytes("Sourdough", BREAD_PARAGRAPHS), "application/octet-stream"),
            ("whales.html", WHALES_HTML.encode(), "text/html"),
        ],
    )
    assert r.status_code == 202, r.text
    items = r.json()["documents"]
    assert [i["status"] for i in items] == ["queued"] * 4
    assert all(i["job_id"] == i["id"] for i in items)
    ids = {i["filename"]: i["id"] for i in items}
    for doc_id in ids.values():
        doc = wait_ready(client, doc_id)
        assert doc["status"] == "ready", doc
    return ids


def test_documents_reach_ready_with_metadata(client: httpx.Client, indexed: dict[str, str]) -> None:
    docs = {d["filename"]: d for d in client.get("/api/documents", params={"collection": COLL}).json()["documents"]}
    assert set(indexed) <= set(docs)
    pdf = docs["volcanoes.pdf"]
    assert pdf["format"] == "pdf" and pdf["pages"] == 2 and pdf["chunks"] >= 2 and pdf["progress"] == 1
    assert docs["sourdough.docx"]["format"] == "docx"
    assert docs["whales.html"]["title"] == "Whale song"
    assert all(d["chunks"] == d["chunks_done"] > 0 for d in docs.values())


@pytest.mark.parametrize(
    ("question", "source"),
    [
        ("How do photovoltaic cells turn sunlight into electricity?", "solar.md"),
        ("What are pyroclastic flows in explosive eruptions?", "volcanoes.pdf"),
        ("How does a sourdough starter make bread rise without yeast?", "sourdough.docx"),
        ("Why do humpback whales sing?", "whales.html"),
    ],
)
def test_relevant_chunk_ranks_first_after_rerank(
    client: httpx.Client, indexed: dict[str, str], question: str, source: str
) -> None:
    body = query(client, question, top_k=3)
    top = body["results"][0]
    assert top["source"] == source, body["results"]
    assert top["document_id"] == indexed[source]
    assert top["rerank_score"] is not None and top["rerank_score"] >= body["results"][-1]["rerank_score"]
    assert {"embed_ms", "search_ms", "rerank_ms", "total_ms"} <= set(body["timings"])


def test_pdf_result_carries_its_page(client: httpx.Client, indexed: dict[str, str]) -> None:
    top = query(client, "pyroclastic flows of hot gas and rock", top_k=1)["results"][0]
    assert top["source"] == "volcanoes.pdf" and top["page"] == 2


def test_second_identical_query_is_served_from_cache(client: httpx.Client, indexed: dict[str, str]) -> None:
    question = f"solar panel efficiency and heat {time.time()}"
    first = query(client, question)
    second = query(client, question)
    assert first["cached"] is False and second["cached"] is True
    assert second["results"] == first["results"]
    assert set(second["timings"]) == {"total_ms"}
    different = query(client, question, top_k=2)  # other parameters, other key
    assert different["cached"] is False


def test_stages_can_be_switched_off(client: httpx.Client, indexed: dict[str, str]) -> None:
    q = "Toothed whales use echolocation clicks"
    dense = query(client, q, sparse=False, rerank=False, top_k=2)
    sparse = query(client, q, dense=False, rerank=False, top_k=2)
    assert dense["results"][0]["source"] == sparse["results"][0]["source"] == "whales.html"
    assert dense["results"][0]["rerank_score"] is None and "rerank_ms" not in dense["timings"]
    assert "embed_ms" not in sparse["timings"]
    assert 0 < dense["results"][0]["score"] <= 1.0001  # cosine
    fused = query(client, q, rerank=False, top_k=2)
    assert fused["results"][0]["score"] == pytest.approx(2 / 61, abs=1e-5)  # first in both lists, RRF k=60
    r = client.post("/api/query", json={"query": q, "collection": COLL, "dense": False, "sparse": False})
    assert r.status_code == 400 and "at least one" in r.json()["error"]


def test_filters_restrict_results(client: httpx.Client, indexed: dict[str, str]) -> None:
    body = query(client, "electricity", filters={"source": "whales.html"}, top_k=5)
    assert body["results"] and {r["source"] for r in body["results"]} == {"whales.html"}
    body = query(client, "electricity", filters={"document_id": [indexed["sourdough.docx"]]}, top_k=5)
    assert {r["document_id"] for r in body["results"]} == {indexed["sourdough.docx"]}


def test_reupload_of_same_bytes_is_a_noop(client: httpx.Client, indexed: dict[str, str]) -> None:
    before = client.get("/api/documents", params={"collection": COLL}).json()["total"]
    r = upload(client, [("solar-copy.md", SOLAR.encode(), "text/markdown")])
    assert r.status_code == 202
    item = r.json()["documents"][0]
    assert item["duplicate"] is True and item["id"] == indexed["solar.md"] and item["status"] == "ready"
    assert client.get("/api/documents", params={"collection": COLL}).json()["total"] == before


def test_changed_file_replaces_old_version_atomically(client: httpx.Client, indexed: dict[str, str]) -> None:
    v1 = "\n\n".join(f"Version one of the tariff notes, item {i}: the quokka fee is {i} euros." for i in range(40))
    v2 = "\n\n".join(f"Version two of the tariff notes, item {i}: the quokka fee is {i + 9} euros." for i in range(40))
    first = upload(client, [("tariff.txt", v1.encode(), "text/plain")]).json()["documents"][0]
    assert wait_ready(client, first["id"])["status"] == "ready"

    seen: list[set[str]] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=str(client.base_url), timeout=60) as c:
            while not stop.is_set():
                r = c.post(
                    "/api/query",
                    json={"query": f"quokka fee {time.time()}", "collection": COLL, "dense": False,
                          "rerank": False, "top_k": 50, "filters": {"source": "tariff.txt"}},
                )  # fmt: skip
                seen.append({x["document_id"] for x in r.json()["results"]})

    watcher = threading.Thread(target=poll)
    watcher.start()
    try:
        second = upload(client, [("tariff.txt", v2.encode(), "text/plain")]).json()["documents"][0]
        assert second["duplicate"] is False and second["replaces"] == first["id"]
        assert wait_ready(client, second["id"])["status"] == "ready"
        time.sleep(0.3)
    finally:
        stop.set()
        watcher.join()
    assert client.get(f"/api/documents/{first['id']}").status_code == 404
    assert seen and all(len(ids) == 1 for ids in seen), "a query saw both versions, or none"
    assert seen[-1] == {second["id"]}
    body = query(client, "quokka fee", filters={"source": "tariff.txt"}, rerank=False, top_k=50)
    assert {r["document_id"] for r in body["results"]} == {second["id"]}
    assert all("Version two" in r["text"] for r in body["results"])


def test_document_is_invisible_until_fully_indexed(client: httpx.Client, indexed: dict[str, str]) -> None:
    text = long_text("zyxwquartz", 400)
    doc = upload(client, [("quartz.txt", text.encode(), "text/plain")]).json()["documents"][0]
    stages = set()
    while True:
        before = client.get(f"/api/documents/{doc['id']}").json()["status"]
        # The same query each time: a cached answer must not outlive the publication either.
        body = query(client, "zyxwquartz report", dense=False, rerank=False)
        hits = [h for h in body["results"] if h["document_id"] == doc["id"]]
        after = client.get(f"/api/documents/{doc['id']}").json()
        stages.update({before, after["status"]})
        if after["status"] != "ready":  # not published when the query ended: nothing of it may show
            assert hits == [], f"chunks visible while {after['status']} ({after['chunks_done']}/{after['chunks']})"
        if before == "ready":  # published before the query began: all of it shows
            assert hits and body["results"][0]["document_id"] == doc["id"]
            break
    assert after["chunks"] > 50 and after["chunks_done"] == after["chunks"]
    assert stages & {"queued", "parsing", "chunking", "embedding", "indexing"}, stages


def test_delete_removes_results_and_invalidates_cache(client: httpx.Client, indexed: dict[str, str]) -> None:
    text = "Axolotls regrow lost limbs, including bones and nerves, within a few weeks."
    doc = upload(client, [("axolotl.txt", text.encode(), "text/plain")]).json()["documents"][0]
    assert wait_ready(client, doc["id"])["status"] == "ready"
    q = "Which animal can regrow its limbs?"
    # Hybrid without rerank: the test reranker is too weak to be trusted among many documents.
    assert query(client, q, rerank=False)["results"][0]["document_id"] == doc["id"]
    assert query(client, q, rerank=False)["cached"] is True
    r = client.delete(f"/api/documents/{doc['id']}")
    assert r.status_code == 200 and r.json()["deleted"] is True
    after = query(client, q, rerank=False)
    assert after["cached"] is False
    assert doc["id"] not in {x["document_id"] for x in after["results"]}
    assert client.get(f"/api/documents/{doc['id']}").status_code == 404
    assert client.delete(f"/api/documents/{doc['id']}").status_code == 404


def test_collections_lifecycle(client: httpx.Client, indexed: dict[str, str]) -> None:
    r = client.post("/api/collections", json={"name": "scratch"})
    assert r.status_code == 201 and r.json()["documents"] == 0
    assert client.post("/api/collections", json={"name": "scratch"}).status_code == 409
    assert client.post("/api/collections", json={"name": "../etc"}).status_code == 422
    empty = query(client, "anything", collection="scratch")
    assert empty["results"] == []
    doc = upload(client, [("note.md", b"# Note\n\nThe scratch collection holds one note about kiwis.", "")], "scratch")
    doc_id = doc.json()["documents"][0]["id"]
    assert wait_ready(client, doc_id)["status"] == "ready"
    isolated = query(client, "photovoltaic cells sunlight", collection="scratch")
    assert {x["document_id"] for x in isolated["results"]} == {doc_id}
    listing = {c["name"]: c for c in client.get("/api/collections").json()}
    assert listing["scratch"]["ready"] == 1 and listing["scratch"]["embed_model"].startswith("ml-api:")
    assert listing[COLL]["chunks"] > 0
    r = client.delete("/api/collections/scratch")
    assert r.status_code == 202 and r.json() == {"name": "scratch", "status": "deleting"}
    # Gone from every view at once, while its job removes the rest.
    assert "scratch" not in {c["name"] for c in client.get("/api/collections").json()}
    r = client.post("/api/query", json={"query": "kiwis", "collection": "scratch"})
    assert r.status_code == 404 and "does not exist" in r.json()["error"]
    assert client.get(f"/api/documents/{doc_id}").status_code == 404
    assert client.delete("/api/collections/scratch").status_code == 404
    # Created again under the same name once its job is done (409 until then), and brought to the same number of
    # changes: no point or cached result of its previous life (the kiwi note, deleted) may come back.
    deadline = time.monotonic() + 30
    while (r := client.post("/api/collections", json={"name": "scratch"})).status_code == 409:
        assert "being deleted" in r.json()["error"] and time.monotonic() < deadline
        time.sleep(0.1)
    assert r.status_code == 201
    doc = upload(client, [("other.md", b"# Other\n\nA second note, about ferns and their spores.", "")], "scratch")
    new_id = doc.json()["documents"][0]["id"]
    assert wait_ready(client, new_id)["status"] == "ready"
    again = query(client, "photovoltaic cells sunlight", collection="scratch")
    assert again["cached"] is False and {x["document_id"] for x in again["results"]} == {new_id}


def test_bad_uploads_get_clear_4xx(client: httpx.Client) -> None:
    r = upload(client, [("sheet.xlsx", b"PK\x03\x04" + b"xl/workbook.xml" + b"\0" * 100, "")])
    assert r.status_code == 415 and "sheet.xlsx" in r.json()["error"]
    r = upload(client, [("app.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + bytes(range(256)), "")])
    assert r.status_code == 415
    r = upload(client, [("empty.txt", b"", "text/plain")])
    assert r.status_code == 400 and "empty" in r.json()["error"]
    mixed = upload(client, [("ok.txt", b"Ferns reproduce with spores.", ""), ("bad.exe", b"\x00\x01\x02" * 50, "")])
    assert mixed.status_code == 202
    states = {d["filename"]: d for d in mixed.json()["documents"]}
    assert states["ok.txt"]["status"] == "queued" and states["bad.exe"]["status"] == "rejected"
    assert states["bad.exe"]["error"]
    r = client.post("/api/documents", json={"files": "x"})
    assert r.status_code == 415 and "multipart" in r.json()["error"]
    r = client.post("/api/documents", files=[("other", ("a.txt", b"x", "text/plain"))])
    assert r.status_code == 400 and "files" in r.json()["error"]
    r = upload(client, [("a.txt", b"text", "text/plain")], collection="bad name!")
    assert r.status_code == 400
    r = upload(client, [("../../etc/passwd", b"root:x:0:0", "text/plain")])
    assert r.status_code == 202 and r.json()["documents"][0]["filename"] == "passwd"


def test_corrupt_pdf_fails_its_job_with_the_reason(client: httpx.Client) -> None:
    broken = pdf_bytes(["A page about granite."])[:300]
    r = upload(client, [("broken.pdf", broken, "application/pdf")])
    assert r.status_code == 202
    doc = wait_ready(client, r.json()["documents"][0]["id"])
    assert doc["status"] == "failed" and doc["error"]
    scanned = upload(client, [("blank.pdf", pdf_bytes([""]), "application/pdf")]).json()["documents"][0]
    doc = wait_ready(client, scanned["id"])
    assert doc["status"] == "failed" and "text" in doc["error"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"query": ""}, 422),
        ({"query": "   "}, 422),
        ({"query": "x", "top_k": 0}, 422),
        ({"query": "x", "top_k": 1001}, 422),
        ({"query": "x", "collection": "a/b"}, 422),
        ({"query": "x", "collection": "missing"}, 404),
        ({"query": "x", "filters": {"page": 1}}, 422),
        ({"query": "x", "unknown": 1}, 422),
        ({"query": 5}, 422),
    ],
)
def test_bad_queries_get_clear_4xx(client: httpx.Client, body: dict, status: int) -> None:
    r = client.post("/api/query", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]


def test_malformed_query_bodies(client: httpx.Client) -> None:
    r = client.post("/api/query", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    r = client.post("/api/query", content=b"query=x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert client.get("/api/documents/nope").status_code == 404
    assert client.get("/api/documents", params={"limit": 0}).status_code == 422


def test_operations_endpoints(client: httpx.Client, indexed: dict[str, str]) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    components = ready.json()["components"]
    assert components["store"]["kind"] == "qdrant-edge" and components["cache"]["kind"] == "redis"
    assert all(c["ok"] for c in components.values())
    metrics = client.get("/metrics").text
    for name in (
        'rag_request_duration_seconds_count{method="POST",route="/api/query"',
        'rag_ingest_jobs{stage="ready"}',
        'rag_cache_requests_total{kind="retrieval",result="hit"}',
        'rag_upstream_duration_seconds_count{outcome="200",target="ml-api"}',
    ):
        assert name in metrics, name
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/documents", "/api/query", "/api/collections"} <= set(spec["paths"])
    info = client.get("/info").json()
    assert info["chunking"]["tokenizer"].endswith("tokenizer.json")
