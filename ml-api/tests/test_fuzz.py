"""Schemathesis over ml-api's own OpenAPI document, against the real service (real models) from the fixtures.

Every operation gets schema-valid and schema-violating requests (the coverage phase's boundary values, then the
fuzzing phase's random ones) from a fixed seed, deterministically; no answer may be a 5xx, a 2xx must match its
documented response model, and a request that violates the schema must be refused with a 4xx. The hand-written
cases for the inputs that used to give 500s are in test_limits.py.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from conftest import Server
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

SEED = 20261130
MAX_EXAMPLES = 40  # per operation and phase: the whole module takes about a minute on two cores
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection]
STATUSES: Counter[str] = Counter()


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
def test_no_input_gets_a_server_error(case: schemathesis.Case) -> None:
    response = case.call_and_validate(checks=CHECKS, timeout=120)
    STATUSES[f"{case.method} {case.path} {response.status_code}"] += 1


def test_fuzzed_service_still_serves(http) -> None:
    """After the fuzzing, health and a real embedding still work: nothing the fuzzer sent broke the service."""
    print(f"\nfuzz cases: {sum(STATUSES.values())}", *sorted(STATUSES.items()), sep="\n  ")
    assert not any(key.endswith(tuple(f" 5{d}{e}" for d in "0123456789" for e in "0123456789")) for key in STATUSES)
    assert http.get("/health").status_code == 200
    assert len(http.post("/embed", json={"inputs": "still here"}).json()[0]) == 384
