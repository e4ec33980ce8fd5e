"""The OpenAPI document the page's types are generated from: committed, current, and with one status enum."""

from __future__ import annotations

import json
from pathlib import Path

from rag_backend.api.openapi import render
from rag_backend.catalog import DocumentStatus

COMMITTED = Path(__file__).resolve().parents[2] / "frontend" / "src" / "api" / "openapi.json"


def test_committed_openapi_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        f"{COMMITTED} is stale: run `cd frontend && npm run api` and commit openapi.json and schema.d.ts"
    )


def test_document_status_is_one_named_enum_used_everywhere() -> None:
    spec = json.loads(render())
    schemas = spec["components"]["schemas"]
    assert schemas["DocumentStatus"]["enum"] == [s.value for s in DocumentStatus]
    ref = {"$ref": "#/components/schemas/DocumentStatus"}
    assert schemas["Document"]["properties"]["status"] == ref
    assert ref in schemas["UploadItem"]["properties"]["status"]["anyOf"]
    params = {p["name"]: p for p in spec["paths"]["/api/documents"]["get"]["parameters"]}
    assert ref in params["status"]["schema"]["anyOf"]
    # Nowhere else is the list spelled out: one enum, referenced.
    text = json.dumps(spec)
    assert text.count('"parsing"') == 1
