"""Sources at the passage: every result and citation indexes its document's parsed text (GET .../text) exactly, for
every format; the original upload comes back (GET .../content) under a type no browser runs; both go with their
document. Real parsing, real ml-api, the embedded Qdrant engine; the catalog part on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from conftest import Proc, wait_ready
from docs import BREAD_PARAGRAPHS, SOLAR, WHALES_HTML, docx_bytes, pdf_bytes

from rag_backend.answers import citations
from rag_backend.api.schemas import Citation, QueryResult
from rag_backend.catalog import Catalog, DocumentStatus, open_catalog
from rag_backend.retrieval import _result
from rag_backend.store import Hit

COLL = "sources"
ME = "host:1:me"
# Multi-byte UTF-8 (accents, CJK, an emoji outside the BMP, a combining accent) and CRLF line ends.
UNICODE_TEXT = (
    "Café au lait — naïve Zoë’s crème brûlée.\r\n"
    "東京の地下鉄は毎日八百万人を運ぶ。\r\n"
    "Rocket launches 🚀 need clear weather and calm upper winds over the pad.\r\n\r\n"
    "The combining accent in e\u0301tude stays as two code points. " * 30
)
PDF_PAGES = [  # Helvetica (Latin-1): accents, guillemets and signs are multi-byte in UTF-8
    "Glaciers carve U-shaped valleys. Déjà vu: the moraine's boulders, «erratics», travel far at 0.5° slopes.",
    "Fjords are drowned glacial valleys; Norway's Sognefjord is over 200 km long. Señor Müller measured it.",
]
LONG_MD = "\n\n".join(
    f"## Part {i}\n\n" + " ".join(f"Sentence {i}.{j} about granite quarries and marble." for j in range(40))
    for i in range(6)
)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script><text>hi</text></svg>'


@cache
def _pdf() -> bytes:  # one PDF: fpdf stamps each one it writes with the time
    return pdf_bytes(PDF_PAGES)


@pytest.fixture(scope="module")
def client(backend: Proc) -> Iterator[httpx.Client]:
    with backend.client() as c:
        yield c


def _upload(client: httpx.Client, files: list[tuple[str, bytes, str]], collection: str = COLL) -> dict[str, str]:
    r = client.post(
        "/api/documents", files=[("files", f) for f in files], data={"collection": collection}
    )  # fmt: skip
    assert r.status_code == 202, r.text
    ids = {i["filename"]: i["id"] for i in r.json()["documents"]}
    for doc_id in ids.values():
        assert wait_ready(client, doc_id)["status"] == "ready"
    return ids


@pytest.fixture(scope="module")
def indexed(client: httpx.Client) -> dict[str, str]:
    return _upload(
        client,
        [
            ("solar.md", SOLAR.encode(), "text/markdown"),
            ("long.md", LONG_MD.encode(), "text/markdown"),
            ("unicode.txt", UNICODE_TEXT.encode(), "text/plain"),
            ("glaciers.pdf", _pdf(), "application/pdf"),
            ("sourdough.docx", docx_bytes("Sourdough", BREAD_PARAGRAPHS), "application/octet-stream"),
            ("whales.html", WHALES_HTML.encode(), "text/html"),
            ("drawing.xml", SVG, "image/svg+xml"),
            ('évil "name"\r\n.txt', b"Plain notes about basalt columns and their hexagonal joints.", "text/plain"),
        ],
    )


def _all_chunks(client: httpx.Client, doc_id: str) -> list[dict]:
    r = client.post(
        "/api/query",
        json={"query": "the", "collection": COLL, "top_k": 200, "candidates": 200, "rerank": False,
              "filters": {"document_id": doc_id}},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["results"]


@pytest.mark.parametrize(
    "name", ["solar.md", "long.md", "unicode.txt", "glaciers.pdf", "sourdough.docx", "whales.html", "drawing.xml"]
)
def test_every_passage_is_a_slice_of_the_text(client: httpx.Client, indexed: dict[str, str], name: str) -> None:
    doc_id = indexed[name]
    r = client.get(f"/api/documents/{doc_id}/text")
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    text = r.content.decode("utf-8")  # exactly what was kept: no re-encoding, no newline translation
    doc = client.get(f"/api/documents/{doc_id}").json()
    results = _all_chunks(client, doc_id)
    assert len(results) == doc["chunks"] > 0  # every chunk, not just the best one
    for res in results:
        assert res["text"] == text[res["char_start"] : res["char_end"]], res
    covered = sorted((res["char_start"], res["char_end"]) for res in results)
    assert covered[0][0] == 0 or not text[: covered[0][0]].strip()  # chunks reach from the start of the text...
    assert covered[-1][1] == len(text.rstrip())  # ...to its end
    if name == "glaciers.pdf":
        pages = {res["page"] for res in results}
        assert pages == {1, 2}
        for res in results:  # a passage's page is where its text is
            assert res["text"] in text.split("\n\n")[res["page"] - 1] or res["page"] in pages
        assert "Déjà vu" in text and "Müller" in text and "«erratics»" in text
    if name == "unicode.txt":
        assert "\r" not in text and "🚀" in text and "東京" in text  # CRLF read as one line end, astral kept whole
        assert any("🚀" in res["text"] for res in results)
    if name == "long.md":
        assert len(results) > 3 and {res["heading"] for res in results} >= {"Part 0", "Part 5"}


def test_citations_of_the_extractive_answer_carry_offsets(client: httpx.Client, indexed: dict[str, str]) -> None:
    body = client.post(
        "/api/query",
        json={"query": "What do photovoltaic cells convert sunlight into?", "collection": COLL, "generate": True,
              "top_k": 3, "rerank": False},
    ).json()  # fmt: skip
    assert body["llm"]["provider"] == "extractive"  # the suite's backend has no LLM_PROVIDERS
    answer, results = body["answer"], body["results"]
    assert "[1]" in answer and "photovoltaic" in answer.lower()
    assert "://" not in answer and "LLM_PROVIDERS" not in answer  # the why is llm.reason, not the reader's text
    assert "LLM_PROVIDERS" in body["llm"]["reason"]
    assert answer.strip() != "\n\n".join(r["text"] for r in results[:3]).strip()
    assert len(answer) < sum(len(r["text"]) for r in results[:3])  # an extract, not the passages again
    for passage in results[:3]:  # no passage is repeated whole (each is longer than one sentence)
        assert " ".join(passage["text"].split()) not in " ".join(answer.split())
    assert body["citations"]
    for cit in body["citations"]:
        res = results[cit["marker"] - 1]
        assert (cit["result_id"], cit["char_start"], cit["char_end"]) == (res["id"], res["char_start"], res["char_end"])
        text = client.get(f"/api/documents/{cit['document_id']}/text").text
        assert text[cit["char_start"] : cit["char_end"]] == res["text"]


def test_originals_are_served_as_uploaded_and_never_as_active_content(
    client: httpx.Client, indexed: dict[str, str]
) -> None:
    pdf = client.get(f"/api/documents/{indexed['glaciers.pdf']}/content")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == _pdf() and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-disposition"].startswith('inline; filename="glaciers.pdf"')
    assert pdf.headers["x-content-type-options"] == "nosniff"

    txt = client.get(f"/api/documents/{indexed['unicode.txt']}/content")
    assert txt.headers["content-type"] == "text/plain; charset=utf-8" and txt.content == UNICODE_TEXT.encode()
    assert "\r\n" in txt.text  # the original, not the parsed text

    for name, raw in (("whales.html", WHALES_HTML.encode()), ("drawing.xml", SVG)):
        r = client.get(f"/api/documents/{indexed[name]}/content")
        assert r.status_code == 200 and r.content == raw
        assert r.headers["content-type"].startswith("text/plain"), name  # never text/html or image/svg+xml
        assert "sandbox" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-disposition"].startswith("inline;")

    docx = client.get(f"/api/documents/{indexed['sourdough.docx']}/content")
    assert docx.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument")
    assert docx.headers["content-disposition"].startswith("attachment;") and docx.content[:2] == b"PK"

    (odd_id,) = [v for k, v in indexed.items() if k.startswith("\u00e9vil")]
    odd = client.get(f"/api/documents/{odd_id}/content")
    disp = odd.headers["content-disposition"]
    name = client.get(f"/api/documents/{odd_id}").json()["filename"]  # as stored (a label, never a path)
    parts = re.fullmatch(r"inline; filename=\"([A-Za-z0-9._ ()+-]+)\"; filename\*=UTF-8''([A-Za-z0-9%._~-]+)", disp)
    assert parts, disp  # nothing in the quoted fallback can end the string or the header
    assert unquote(parts.group(2)) == name and parts.group(1).startswith("_vil ")

    etag = pdf.headers["etag"]
    again = client.get(f"/api/documents/{indexed['glaciers.pdf']}/content", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    text = client.get(f"/api/documents/{indexed['glaciers.pdf']}/text", headers={"If-None-Match": etag})
    assert text.status_code == 200 and text.headers["etag"] != etag  # another representation, another tag


def test_hostile_and_unknown_ids_are_404(client: httpx.Client, indexed: dict[str, str]) -> None:
    for bad in ("nope", "..", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "x" * 5000, "%00", "a%0Ab", "%E2%80%AE",
                "00000000-0000-0000-0000-000000000000"):  # fmt: skip
        for route in ("text", "content"):
            r = client.get(f"/api/documents/{bad}/{route}")
            assert r.status_code == 404, (bad, route, r.status_code, r.text[:200])
            if r.headers.get("content-type", "").startswith("application/json"):
                assert "error" in r.json()
    assert client.get("/api/documents/../../etc/passwd").status_code == 404


def test_deleting_a_document_or_a_collection_leaves_nothing_behind(client: httpx.Client, backend: Proc) -> None:
    data_dir = backend.service.log.parent / "backend-data"  # conftest.start_backend's DATA_DIR for "backend"
    assert (data_dir / "catalog.sqlite3").is_file()
    ids = _upload(client, [("gone.md", b"# Gone\n\nBasalt cools into hexagonal columns at the Giant's Causeway.",
                            "text/markdown")], "sources-gone")  # fmt: skip
    doc_id = ids["gone.md"]
    assert client.get(f"/api/documents/{doc_id}/text").status_code == 200
    assert client.delete(f"/api/documents/{doc_id}").status_code == 200
    for route in ("text", "content", ""):
        assert client.get(f"/api/documents/{doc_id}/{route}".rstrip("/")).status_code == 404
    _assert_nothing_kept(data_dir, doc_id)

    ids = _upload(client, [("a.txt", b"Obsidian is volcanic glass formed by rapid cooling.", "text/plain"),
                           ("b.txt", b"Pumice floats because gas bubbles fill it.", "text/plain")],
                  "sources-doomed")  # fmt: skip
    assert client.delete("/api/collections/sources-doomed").status_code == 202
    for doc_id in ids.values():
        assert client.get(f"/api/documents/{doc_id}/content").status_code == 404  # hidden at once
    deadline = time.monotonic() + 30
    while any((data_dir / "uploads" / i).exists() for i in ids.values()):
        assert time.monotonic() < deadline, "the collection's deletion did not finish"
        time.sleep(0.2)
    for doc_id in ids.values():
        _assert_nothing_kept(data_dir, doc_id)


def _assert_nothing_kept(data_dir: Path, doc_id: str) -> None:
    assert not (data_dir / "uploads" / doc_id).exists()
    with sqlite3.connect(data_dir / "catalog.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM texts WHERE document_id = ?", (doc_id,)).fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM documents WHERE id = ?", (doc_id,)).fetchone() == (0,)


def test_passages_indexed_before_offsets_were_kept_have_null_offsets() -> None:
    old = Hit("3f0f0c1e-0000-4000-8000-000000000001", 0.5, {"collection": "c", "document_id": "d", "text": "Old.",
                                                            "source": "a.txt", "position": 0})  # fmt: skip
    result = _result(old, 0.5, None)
    assert (result["char_start"], result["char_end"]) == (None, None)
    assert QueryResult.model_validate(result).char_start is None
    (cit,) = citations("Old [1].", [result])
    assert Citation.model_validate(cit).char_end is None


# -- the catalog, both engines ----------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def cat(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    url = request.getfixturevalue("database_url") if request.param == "postgres" else None
    catalog = open_catalog(url, tmp_path)
    yield catalog
    catalog.close()


def test_texts_are_fenced_kept_exactly_and_go_with_their_document(cat: Catalog) -> None:
    cat.create_collection("c")
    doc = cat.add_document("c", "a.txt", "text", 3, "sha", b"abc")
    text = "NUL\x00 and é and 🚀 and a lone \ud800 surrogate\r\nend"
    assert not cat.store_text(doc["id"], ME, text)  # nobody holds the job: no text is written
    assert cat.read_text(doc["id"]) is None
    assert cat.take(doc["id"], ME, 30) and cat.set_stage(doc["id"], DocumentStatus.PARSING, ME)
    assert cat.store_text(doc["id"], ME, text) and cat.store_text(doc["id"], ME, text)  # a resumed job: again
    kept = cat.read_text(doc["id"]).decode("utf-8")  # type: ignore[union-attr]
    assert len(kept) == len(text) and kept == text.replace("\ud800", "?")  # offsets still hold
    assert not cat.store_text(doc["id"], "host:2:other", text)  # another process's write is fenced out
    cat.mark_deleting(doc["id"])
    assert not cat.store_text(doc["id"], ME, text)  # a deleted job writes nothing more
    cat.remove_document(doc["id"])
    assert cat.read_text(doc["id"]) is None and not cat.has_upload(doc["id"])

    other = cat.add_document("c", "b.txt", "text", 3, "sha2", b"def")
    assert cat.take(other["id"], ME, 30) and cat.set_stage(other["id"], DocumentStatus.PARSING, ME)
    assert cat.store_text(other["id"], ME, "kept")
    cat.release(other["id"], ME)
    assert cat.mark_collection_deleting("c") and cat.claim_collection(ME, 30)
    assert cat.drop_collection("c", ME)
    assert cat.read_text(other["id"]) is None and not cat.has_upload(other["id"])
