"""Schemathesis over the backend's own OpenAPI document, against a real backend (real ml-api, real Redis).

Every operation gets schema-valid and schema-violating requests (the coverage phase's boundary values and the
fuzzing phase's random ones) from a fixed seed; no answer may be a 5xx, a 2xx must match its response model, and
a request that violates the schema must be refused. The backend is this module's own (fuzzed collections and
uploads stay out of the other tests' catalog), with one indexed document so queries reach the store and rerank.
It runs authenticated, as deployed: AUTH_MODE=users, every request carrying an admin user's API key (so every route
is reached past the access checks; test_access_routes.py holds who else may call what).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from conftest import Proc, start_backend, wait_ready
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, response_schema_conformance

from rag_backend.api.openapi import document

SEED = 20261130
MAX_EXAMPLES = 50  # per operation and phase: about 850 requests, under a minute on two cores
CHECKS = [not_a_server_error, response_schema_conformance, negative_data_rejection]


ADMIN = {"email": "fuzz-admin@example.test", "password": "fuzz-admin-password"}
AUTH: dict[str, str] = {}  # the admin key's header, once the backend is up


@pytest.fixture(scope="module")
def fuzz_backend(tmp_path_factory: pytest.TempPathFactory, ml_api: Proc, redis_url: str) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("fuzz")
    proc = start_backend(
        tmp, ml_api.url, "fuzz-backend", REDIS_URL=redis_url, CACHE_PREFIX=f"rag-fuzz-{SEED}:", AUTH_MODE="users",
        ADMIN_EMAIL=ADMIN["email"], ADMIN_PASSWORD=ADMIN["password"],
    )  # fmt: skip
    with proc.client() as session:
        assert session.post("/api/auth/login", json=ADMIN).status_code == 204
        key = session.post("/api/keys", json={"name": "fuzz", "scope": "admin"}).json()["token"]
    AUTH["Authorization"] = f"Bearer {key}"
    with proc.client(headers=AUTH) as client:
        assert client.get("/api/collections").status_code == 200
        files = {"files": ("granite.txt", b"Granite is an igneous rock made of quartz and feldspar.", "text/plain")}
        doc = client.post("/api/documents", files=files).json()["documents"][0]
        assert wait_ready(client, doc["id"])["status"] == "ready"
    yield proc
    proc.stop()


CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
)
# The document the code produces is the one the backend serves (tests/test_openapi.py holds the page's copy to it).
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)


STATUSES: Counter[str] = Counter()  # what the run got, by operation and status class: the figures of the run


@schema.parametrize()
def test_no_input_gets_a_server_error(case: schemathesis.Case, fuzz_backend: Proc) -> None:
    response = case.call_and_validate(base_url=fuzz_backend.url, headers=AUTH, checks=CHECKS, timeout=60)
    STATUSES[f"{case.method} {case.path} {response.status_code // 100}xx"] += 1


def test_fuzzed_backend_still_serves(fuzz_backend: Proc) -> None:
    """After the fuzzing, the seeded document still answers a query: nothing the fuzzer sent broke the stack."""
    print(f"\nfuzz cases: {sum(STATUSES.values())}", *sorted(STATUSES.items()), sep="\n  ")
    assert sum(STATUSES.values()) >= 200 and not any(key.endswith("5xx") for key in STATUSES)
    with fuzz_backend.client(timeout=60) as client:
        assert client.get("/api/collections").status_code == 401  # users mode: nothing without credentials
    with fuzz_backend.client(timeout=60, headers=AUTH) as client:
        r = client.post("/api/query", json={"query": "what is granite made of", "collection": "default"})
        assert r.status_code == 200, r.text
        assert any("feldspar" in hit["text"] for hit in r.json()["results"])
