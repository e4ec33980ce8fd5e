"""The OpenAPI document the page's types are generated from: committed, current, with one status enum, the upload's
form, and every error answer the backend gives (and only those), each with the one error body.

The last tests provoke errors for real, over HTTP against running backends and in-process where a dependency must
fail, and hold each answer to what the document says for its operation and status.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from conftest import Proc, start_backend
from test_app_errors import indexed_collection, running

from rag_backend.api.errors import ERRORS, HTTP_KINDS, JSON_BODY_PATHS, ErrorType, classify
from rag_backend.api.openapi import render
from rag_backend.api.responses import raises
from rag_backend.api.wire import body_too_large, unauthorized
from rag_backend.catalog import COLLECTION_NAME, DocumentStatus

COMMITTED = Path(__file__).resolve().parents[2] / "frontend" / "src" / "api" / "openapi.json"
SPEC: dict[str, Any] = json.loads(render())
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
READY_REPORT = {"application/json": {"schema": {"$ref": "#/components/schemas/ReadyReport"}}}

RETRIEVAL = {400, 401, 403, 404, 409, 413, 415, 422, 502, 503, 504}
# Every operation and the error statuses it can answer with: the contract, written out once, here.
ERROR_STATUSES: dict[tuple[str, str], set[int]] = {
    ("post", "/api/auth/login"): {400, 401, 403, 413, 415, 422, 429, 503},
    ("post", "/api/auth/logout"): {403, 503},
    ("get", "/api/auth/me"): {401},
    ("get", "/api/auth/options"): set(),
    ("get", "/api/auth/oidc/login"): {400, 503},
    ("get", "/api/auth/oidc/callback"): {400, 503},
    ("get", "/api/users"): {401, 403, 503},
    ("post", "/api/users"): {400, 401, 403, 409, 413, 415, 422, 503},
    ("patch", "/api/users/{email}"): {400, 401, 403, 404, 413, 415, 422, 503},
    ("get", "/api/keys"): {401, 503},
    ("post", "/api/keys"): {400, 401, 403, 413, 415, 422, 503},
    ("delete", "/api/keys/{key_id}"): {401, 403, 404, 422, 503},
    ("post", "/api/documents"): {400, 401, 403, 404, 409, 413, 415, 502, 503},
    ("get", "/api/documents"): {401, 422, 503},
    ("get", "/api/documents/{doc_id}"): {401, 404, 503},
    ("delete", "/api/documents/{doc_id}"): {401, 403, 404, 503},
    ("post", "/api/documents/{doc_id}/retry"): {401, 403, 404, 409, 503},
    ("get", "/api/documents/{doc_id}/text"): {401, 404, 409, 503},
    ("get", "/api/documents/{doc_id}/content"): {401, 404, 503},
    ("get", "/api/collections"): {401, 503},
    ("post", "/api/collections"): {400, 401, 403, 409, 413, 415, 422, 502, 503},
    ("delete", "/api/collections/{name}"): {401, 403, 404, 422, 503},
    ("get", "/api/collections/{name}/members"): {401, 404, 422, 503},
    ("put", "/api/collections/{name}/members"): {400, 401, 403, 404, 413, 415, 422, 503},
    ("delete", "/api/collections/{name}/members/{email}"): {401, 403, 404, 422, 503},
    ("post", "/api/query"): RETRIEVAL,
    ("post", "/api/query/stream"): RETRIEVAL,
    ("get", "/api/ai/health"): {401},
    ("post", "/api/conversations"): {400, 401, 403, 413, 415, 422, 503},
    ("get", "/api/conversations"): {401, 422, 503},
    ("get", "/api/conversations/{conversation_id}"): {401, 404, 422, 503},
    ("patch", "/api/conversations/{conversation_id}"): {400, 401, 403, 404, 413, 415, 422, 503},
    ("delete", "/api/conversations/{conversation_id}"): {401, 403, 404, 422, 503},
    ("post", "/api/conversations/{conversation_id}/messages/{message_id}/feedback"): {
        400,
        401,
        403,
        404,
        413,
        415,
        422,
        503,
    },
    ("get", "/api/feedback"): {401, 422, 503},
    ("get", "/health"): set(),
    ("get", "/ready"): {503},
    ("get", "/info"): set(),
    ("get", "/metrics"): {503},
}


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield method, path, op


def test_committed_openapi_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        f"{COMMITTED} is stale: run `make api-types` and commit openapi.json and schema.d.ts"
    )


def test_document_status_is_one_named_enum_used_everywhere() -> None:
    schemas = SPEC["components"]["schemas"]
    assert schemas["DocumentStatus"]["enum"] == [s.value for s in DocumentStatus]
    ref = {"$ref": "#/components/schemas/DocumentStatus"}
    assert schemas["Document"]["properties"]["status"] == ref
    assert ref in schemas["UploadItem"]["properties"]["status"]["anyOf"]
    params = {p["name"]: p for p in SPEC["paths"]["/api/documents"]["get"]["parameters"]}
    assert ref in params["status"]["schema"]["anyOf"]
    # Nowhere else is the list spelled out: one enum, referenced.
    text = json.dumps(SPEC)
    assert text.count('"parsing"') == 1


def test_upload_documents_its_multipart_form() -> None:
    body = SPEC["paths"]["/api/documents"]["post"]["requestBody"]
    assert body["required"] is True and list(body["content"]) == ["multipart/form-data"]
    form = body["content"]["multipart/form-data"]["schema"]
    binary_files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    assert form["type"] == "object" and form["required"] == ["files"]
    assert set(form["properties"]) == {"files", "collection", "embed_model"}  # `file`: named in the description
    assert binary_files.items() <= form["properties"]["files"].items()
    collection = form["properties"]["collection"]
    assert collection["type"] == "string" and collection["pattern"] == COLLECTION_NAME.pattern


def test_every_operation_that_reads_a_body_documents_it() -> None:
    bodies = {(m, p): list(op["requestBody"]["content"]) for m, p, op in operations(SPEC) if "requestBody" in op}
    assert bodies == {
        ("post", "/api/auth/login"): ["application/json"],
        ("post", "/api/users"): ["application/json"],
        ("patch", "/api/users/{email}"): ["application/json"],
        ("post", "/api/keys"): ["application/json"],
        ("put", "/api/collections/{name}/members"): ["application/json"],
        ("post", "/api/documents"): ["multipart/form-data"],
        ("post", "/api/collections"): ["application/json"],
        ("post", "/api/query"): ["application/json"],
        ("post", "/api/query/stream"): ["application/json"],
        ("post", "/api/conversations"): ["application/json"],
        ("patch", "/api/conversations/{conversation_id}"): ["application/json"],
        ("post", "/api/conversations/{conversation_id}/messages/{message_id}/feedback"): ["application/json"],
    }
    # The 415 handler's list of JSON routes is exactly the operations with a JSON body.
    assert {p for (_, p), media in bodies.items() if media == ["application/json"]} == JSON_BODY_PATHS


def test_every_operation_documents_its_error_statuses_with_the_error_body() -> None:
    documented = {(m, p): {int(s) for s in op["responses"] if int(s) >= 400} for m, p, op in operations(SPEC)}
    assert documented == ERROR_STATUSES
    for method, path, op in operations(SPEC):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            expected = READY_REPORT if path == "/ready" else ERROR_BODY
            assert response["content"] == expected, (method, path, status)
            assert response["description"], (method, path, status)
            if status == "401":
                assert "WWW-Authenticate" in response["headers"]
            if status == "503" and path != "/ready":  # every 503 row says when to retry
                assert "Retry-After" in response["headers"], (method, path)


def test_no_operation_documents_fastapi_validation_errors() -> None:
    """Our 422 (and every error) is {"error", "error_type"}, never FastAPI's `detail` list."""
    text = json.dumps(SPEC)
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text
    assert not {"HTTPValidationError", "ValidationError"} & set(SPEC["components"]["schemas"])
    body = SPEC["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error", "error_type"] and body["additionalProperties"] is False


def test_error_type_enum_is_every_kind_the_backend_answers_with() -> None:
    enum = SPEC["components"]["schemas"]["ErrorType"]["enum"]
    assert enum == [t.value for t in ErrorType]
    edge = [unauthorized(), body_too_large("MAX_REQUEST_MB", 1)]
    answered = (
        {row.error_type for row in ERRORS.values()}
        | set(HTTP_KINDS.values())
        | {classify(RuntimeError("a bug")).error_type}
        | {json.loads(bytes(r.body))["error_type"] for r in edge}
    )
    assert answered == set(enum)
    upload_item = SPEC["components"]["schemas"]["UploadItem"]["properties"]["error_type"]
    assert {"$ref": "#/components/schemas/ErrorType"} in upload_item["anyOf"]


def test_a_route_cannot_declare_an_error_the_table_does_not_map() -> None:
    with pytest.raises(TypeError, match="KeyError has no row"):
        raises(KeyError)


# -- the document against real answers ----------------------------------------------------------------------------

KEY = "openapi-test-key"
WITH_KEY = {"x-api-key": KEY}
JSON = {"content-type": "application/json"}
FOREIGN = {"origin": "https://another-site.example"}
EXISTING = f"openapi-{uuid.uuid4().hex[:8]}"
TEXT_FILE = {"files": ("a.txt", b"Basalt is a volcanic rock.", "text/plain")}


@dataclass(frozen=True)
class Provoked:
    """One real error: the request, the operation it belongs to and the status it must get. `strict` runs it on
    the backend with API_KEY and small limits."""

    name: str
    method: str
    url: str
    operation: str
    status: int
    request: dict[str, Any] = field(default_factory=dict)
    strict: bool = False


PROVOKED = [
    Provoked("bad-collection-field", "POST", "/api/documents", "/api/documents", 400,
             {"files": TEXT_FILE, "data": {"collection": "no spaces"}}),
    Provoked("broken-json", "POST", "/api/query", "/api/query", 400, {"content": b'{"query":', "headers": JSON}),
    Provoked("no-key", "GET", "/api/collections", "/api/collections", 401, strict=True),
    Provoked("cross-site-delete", "DELETE", f"/api/collections/{EXISTING}", "/api/collections/{name}", 403,
             {"headers": FOREIGN}),
    Provoked("cross-site-upload", "POST", "/api/documents", "/api/documents", 403,
             {"files": TEXT_FILE, "headers": FOREIGN}),
    Provoked("unknown-document", "GET", "/api/documents/nope", "/api/documents/{doc_id}", 404),
    Provoked("retry-unknown", "POST", "/api/documents/nope/retry", "/api/documents/{doc_id}/retry", 404),
    Provoked("unknown-collection", "POST", "/api/query", "/api/query", 404,
             {"json": {"query": "basalt", "collection": "no-such-collection"}}),
    Provoked("collection-exists", "POST", "/api/collections", "/api/collections", 409, {"json": {"name": EXISTING}}),
    Provoked("body-over-limit", "POST", "/api/query", "/api/query", 413,
             {"content": b'{"query":"' + b"x" * 100_000 + b'"}', "headers": JSON | WITH_KEY}, strict=True),
    Provoked("file-over-limit", "POST", "/api/documents", "/api/documents", 413,
             {"files": {"files": ("big.txt", b"word " * 4000, "text/plain")}, "headers": WITH_KEY}, strict=True),
    Provoked("upload-not-multipart", "POST", "/api/documents", "/api/documents", 415, {"json": {"files": []}}),
    Provoked("upload-unsupported-file", "POST", "/api/documents", "/api/documents", 415,
             {"files": {"files": ("a.zip", b"PK\x03\x04" + b"\0" * 64, "application/zip")}}),
    Provoked("query-not-json", "POST", "/api/query/stream", "/api/query/stream", 415,
             {"content": b'{"query":"a"}', "headers": {"content-type": "text/plain"}}),
    Provoked("limit-zero", "GET", "/api/documents?limit=0", "/api/documents", 422),
    Provoked("blank-query", "POST", "/api/query", "/api/query", 422, {"json": {"query": " "}}),
    Provoked("bad-collection-name", "POST", "/api/collections", "/api/collections", 422, {"json": {"name": "a b"}}),
]  # fmt: skip


def check_documented(spec: dict[str, Any], method: str, operation: str, response: httpx.Response) -> None:
    """The answer's status is documented for its operation, and its body and headers are what that entry says."""
    documented = spec["paths"][operation][method.lower()]["responses"]
    entry = documented.get(str(response.status_code))
    assert entry is not None, f"{method} {operation} answered {response.status_code}, not in {sorted(documented)}"
    schema = entry["content"]["application/json"]["schema"]
    validator = jsonschema_rs.validator_for(schema | {"components": spec["components"]})
    validator.validate(response.json())
    for header in entry.get("headers", {}):
        assert header in response.headers, f"{method} {operation} {response.status_code}: no {header} header"


@pytest.fixture(scope="module")
def strict_backend(tmp_path_factory: pytest.TempPathFactory, ml_api: Proc) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("openapi")
    proc = start_backend(tmp, ml_api.url, "strict-backend", API_KEY=KEY, MAX_REQUEST_MB="0.05", MAX_UPLOAD_MB="0.01")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def existing_collection(backend: Proc) -> Iterator[str]:
    with backend.client() as client:
        assert client.post("/api/collections", json={"name": EXISTING}).status_code == 201
    yield EXISTING
    with backend.client() as client:
        client.delete(f"/api/collections/{EXISTING}")


def test_the_served_document_is_the_committed_one(backend: Proc) -> None:
    with backend.client() as client:
        assert client.get("/openapi.json").json() == SPEC


@pytest.mark.parametrize("case", PROVOKED, ids=[c.name for c in PROVOKED])
def test_provoked_errors_are_answered_as_documented(
    case: Provoked, backend: Proc, strict_backend: Proc, existing_collection: str
) -> None:
    proc = strict_backend if case.strict else backend
    with proc.client(timeout=60) as client:
        response = client.request(case.method, case.url, **case.request)
    assert response.status_code == case.status, response.text
    check_documented(SPEC, case.method, case.operation, response)


@pytest.mark.anyio
async def test_outage_answers_are_documented(tmp_path: Path) -> None:
    """ml-api down (in-process, so it can be made to fail): a query's 503 and /ready's 503 are as documented."""
    async with running(tmp_path) as (svc, client):
        await indexed_collection(svc)
        spec = (await client.get("/openapi.json")).json()
        r = await client.post("/api/query", json={"query": "basalt", "collection": "c"})
        assert r.status_code == 503 and r.json()["error_type"] == "upstream_unavailable", r.text
        check_documented(spec, "POST", "/api/query", r)
        r = await client.get("/ready")
        assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
        check_documented(spec, "GET", "/ready", r)
