"""ml-api's OpenAPI document describes every route, its request body and its error responses, in the shape
the route family really answers with (schemathesis in test_fuzz.py checks the answers against it)."""

from __future__ import annotations

import httpx

from ml_api.api.middleware import OPEN_PATHS as OPEN  # no API key asked: probes, metrics, docs


def test_every_operation_documents_its_body_and_errors(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas, "FastAPI's 422 shape is not what we answer"
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("description") or op.get("summary"), where
            if method == "post":
                body = op["requestBody"]["content"]["application/json"]["schema"]
                assert body, where
                assert {"200", "401", "413", "415", "422", "429"} <= set(op["responses"]), where
            elif path not in OPEN:
                assert "401" in op["responses"], where
            errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
            family = "OpenAIErrorBody" if path.startswith(("/v1/", "/v2/")) else "ErrorBody"
            for code, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == f"#/components/schemas/{family}", (where, code)
