"""Schemathesis over ml-api's own OpenAPI document, against the real service (real models) from the fixtures.

Every operation gets schema-valid and schema-violating requests (the coverage phase's boundary values, then the
fuzzing phase's random ones) from a fixed seed, deterministically; no answer may be a 5xx, a 2xx must match its
documented response model, and a request that violates the schema must be refused with a 4xx. After every case the
service must still embed (nothing a case sent broke it), checked in the case itself: no test reads what another one
left behind. The hand-written cases for the inputs that used to give 500s are in test_limits.py.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from conftest import Server
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

SEED = 20261130
MAX_EXAMPLES = 40  # per operation and phase: the whole module takes about a minute on two cores
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection]


@pytest.fixture
def api_schema(server: Server) -> schemathesis.BaseSchema:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_no_input_gets_a_server_error_nor_breaks_the_service(case: schemathesis.Case, http: httpx.Client) -> None:
    case.call_and_validate(checks=CHECKS, timeout=120)
    still = http.post("/embed", json={"inputs": "still here"})
    assert still.status_code == 200 and len(still.json()[0]) == 384, f"after {case.method} {case.path}: {still.text}"
