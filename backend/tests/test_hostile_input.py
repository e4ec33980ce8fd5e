"""Hostile input over real HTTP to a real backend (real ml-api, real Redis): raw bytes the HTTP clients of the
fuzzer would never send. Every answer is a 2xx or a 4xx that says why, never a 5xx or a hang."""

from __future__ import annotations

import pytest
from conftest import Proc, wait_ready

BIG = b"9" * 5000  # past Python's 4300-digit int parsing limit
JSON = [(b"content-type", b"application/json")]
LEXICAL = b'"collection":"default","dense":false,"rerank":false'
OK = {200, 404}  # a query before any upload finds no "default" collection: 404, still an answer with a reason

# (method, path, body, headers, statuses the answer must be in)
CASES: list[tuple[str, str, bytes | None, list[tuple[bytes, bytes]], set[int]]] = [
    # Integers in query strings: past 64 bits (SQLite's limit, a 500 before), overlong, negative, not numbers.
    ("GET", "/api/documents?offset=18446744073709551616", None, [], {422}),
    ("GET", "/api/documents?offset=9223372036854775808", None, [], {422}),
    ("GET", "/api/documents?offset=1000000000", None, [], {200}),
    ("GET", "/api/documents?limit=" + BIG.decode(), None, [], {422}),
    ("GET", "/api/documents?limit=-1", None, [], {422}),
    ("GET", "/api/documents?limit=1e3", None, [], {422}),
    # Invalid UTF-8 and NUL in query strings and path parameters.
    ("GET", "/api/documents?collection=%ED%A0%80&status=ready", None, [], {200}),
    ("GET", "/api/documents?collection=%00", None, [], {200}),
    ("GET", "/api/documents?status=%ff", None, [], {422}),
    ("GET", "/api/documents/%ED%A0%80", None, [], {404}),
    ("GET", "/api/documents/%00", None, [], {404}),
    ("DELETE", "/api/documents/%ff%fe", None, [], {404}),
    ("DELETE", "/api/collections/%00", None, [], {404}),
    ("DELETE", "/api/collections/%C0%AF..%2Fx", None, [], {404}),
    # JSON bodies: lone surrogates, NUL, invalid UTF-8 bytes, overlong and out-of-range numbers.
    ("POST", "/api/collections", b'{"name":"\\ud800"}', JSON, {422}),
    ("POST", "/api/collections", b'{"name":"a\\u0000"}', JSON, {422}),
    ("POST", "/api/collections", b'{"name":"ok\\n"}', JSON, {422}),
    ("POST", "/api/collections", b'{"name":"\xff\xfe"}', JSON, {400}),
    ("POST", "/api/collections", b'{"name":' + BIG + b"}", JSON, {400}),
    ("POST", "/api/query", b'{"query":"\\ud800",' + LEXICAL + b"}", JSON, {422}),
    ("POST", "/api/query", b'{"query":"\\udfff\\ud800 granite"}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a\\u0000b",' + LEXICAL + b"}", JSON, OK),
    ("POST", "/api/query", b'{"query":"granite\\u0000"}', JSON, OK),
    ("POST", "/api/query", b'{"query":"\\ud83d\\ude00 granite"}', JSON, OK),  # a valid surrogate pair
    ("POST", "/api/query", b'{"query":"a\xff\xfeb",' + LEXICAL + b"}", JSON, {400}),
    ("POST", "/api/query", b'{"query":"a","filters":{"source":"\\udfff"}}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a","filters":{"document_id":["\\ud800"]}}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a","filters":{"document_id":["\\u0000"]}}', JSON, OK),
    ("POST", "/api/query", b'{"query":"a","filters":{"source":["' + b"x" * 2000 + b'"]}}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a","top_k":' + BIG + b"}", JSON, {400}),
    ("POST", "/api/query", b'{"query":"a","top_k":18446744073709551616}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a","top_k":1e999}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a","candidates":-1}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a","collection":"' + b"c" * 100 + b'"}', JSON, {422}),
    ("POST", "/api/query", b'{"query":"a",', JSON, {400}),
    ("POST", "/api/query", b"", JSON, {422}),
    ("POST", "/api/query", b'{"query":"a"}', [(b"content-type", b"text/plain")], {415}),
    ("POST", "/api/query", b'{"query":"a"}', [], {415}),  # no Content-Type at all
    ("POST", "/api/query/stream", b"query=a", [(b"content-type", b"application/x-www-form-urlencoded")], {415}),
    ("POST", "/api/collections", b"name=a", [(b"content-type", b"application/x-www-form-urlencoded")], {415}),
    ("POST", "/api/collections", b'{"name":"\\ud800"}', [(b"content-type", b"application/vnd.x+json")], {422}),
    ("POST", "/api/query/stream", b'{"query":"\\ud800"}', JSON, {422}),
    ("POST", "/api/query/stream", b'{"query":"a","filters":{"source":"\\ud800"}}', JSON, {422}),
    ("POST", "/api/query/stream", b'{"query":"a\\u0000b",' + LEXICAL + b"}", JSON, OK),
    # Multipart: broken framing, invalid bytes in the boundary, the field names and the collection field.
    ("POST", "/api/documents", b"--B\r\ngarbage", [(b"content-type", b"multipart/form-data; boundary=B")], {400}),
    ("POST", "/api/documents", b"x", [(b"content-type", b"multipart/form-data")], {400}),
    ("POST", "/api/documents", b"x", [(b"content-type", b"multipart/form-data; boundary=\xff")], {400}),
    ("POST", "/api/documents", b"x", [(b"content-type", b"application/octet-stream")], {415}),
]


def multipart(filename: bytes, data: bytes, collection: bytes | None = None, field: bytes = b"files") -> bytes:
    part = b'--B\r\nContent-Disposition: form-data; name="' + field + b'"; filename="' + filename + b'"\r\n'
    body = part + b"Content-Type: text/plain\r\n\r\n" + data + b"\r\n"
    if collection is not None:
        body += b'--B\r\nContent-Disposition: form-data; name="collection"\r\n\r\n' + collection + b"\r\n"
    return body + b"--B--\r\n"


MULTIPART = [(b"content-type", b"multipart/form-data; boundary=B")]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "expected"), CASES, ids=[f"{c[0]} {c[1][:40]}" for c in CASES]
)
def test_hostile_requests_get_a_reason_never_a_5xx(
    backend: Proc, method: str, path: str, body: bytes | None, headers: list[tuple[bytes, bytes]], expected: set[int]
) -> None:
    with backend.client(timeout=60) as client:
        r = client.request(method, path, content=body, headers=headers)
    assert r.status_code in expected, r.text
    if r.status_code >= 400:  # the one error body, with a reason
        assert r.json()["error"] and r.json()["error_type"] in ("validation", "not_found", "unsupported_format")


@pytest.mark.parametrize(
    "filename",
    [b"\xff\xfe bytes.txt", b"nul\x00inside.txt", b"\xed\xa0\x80 surrogate.txt", b"../../etc/passwd.txt", b""],
    ids=["invalid-utf8", "nul", "utf8-surrogate", "traversal", "empty"],
)
def test_hostile_file_names_are_stored_and_ingested(backend: Proc, filename: bytes) -> None:
    """Any file name is just a label: it is decoded leniently, never used as a path, and the file is ingested."""
    data = b"Obsidian is volcanic glass; file name case " + filename.hex().encode()
    with backend.client(timeout=60) as client:
        r = client.post("/api/documents", content=multipart(filename, data), headers=MULTIPART)
        assert r.status_code == 202, r.text
        doc = r.json()["documents"][0]
        assert wait_ready(client, doc["id"])["status"] == "ready"
        listed = client.get("/api/documents", params={"limit": 1000}).json()["documents"]
        assert doc["id"] in {d["id"] for d in listed}
        assert client.delete(f"/api/documents/{doc['id']}").status_code == 200


@pytest.mark.parametrize(
    "collection", [b"\xff\xfe", b"\x00", b"ok\n", b"a" * 65], ids=["invalid-utf8", "nul", "lf", "long"]
)
def test_hostile_collection_field_is_a_400(backend: Proc, collection: bytes) -> None:
    with backend.client(timeout=60) as client:
        body = multipart(b"a.txt", b"some words", collection=collection)
        r = client.post("/api/documents", content=body, headers=MULTIPART)
    assert r.status_code == 400 and "collection names are" in r.json()["error"]


def test_numeric_parameters_show_their_limits_in_openapi(backend: Proc) -> None:
    """Every integer a client can send is bounded in the schema, so /docs and generated clients know the range."""
    with backend.client() as client:
        spec = client.get("/openapi.json").json()
    params = {p["name"]: p["schema"] for p in spec["paths"]["/api/documents"]["get"]["parameters"]}
    assert params["limit"]["minimum"] == 1 and params["limit"]["maximum"] == 1000
    assert params["offset"]["minimum"] == 0 and params["offset"]["maximum"] == 1_000_000_000
    query = spec["components"]["schemas"]["QueryRequest"]["properties"]
    for name in ("top_k", "candidates"):
        bounded = next(s for s in query[name]["anyOf"] if s.get("type") == "integer")
        assert bounded["minimum"] == 1 and bounded["maximum"] == 1000
    integers = [
        (path, p["name"])
        for path, ops in spec["paths"].items()
        for op in ops.values()
        for p in op.get("parameters", [])
        if p["schema"].get("type") == "integer" and "maximum" not in p["schema"]
    ]
    assert integers == [], f"unbounded integer parameters: {integers}"
