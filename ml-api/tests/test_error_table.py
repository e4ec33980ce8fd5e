"""The edge's error table: every domain error has a row, and each row is what clients get over HTTP.

The documented statuses below are the contract (TEI's codes where TEI has one). Every class is checked through
the real exception handlers in a small app; the ones a client can provoke are also checked on the running
service. Overloaded (429) and ClientGone (499) need concurrency and are provoked in test_guards and test_ops.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ml_api import errors
from ml_api.api.errors import ERRORS, install_error_handlers
from ml_api.errors import DomainError

DOCUMENTED: dict[type[DomainError], tuple[int, str]] = {
    errors.InvalidInput: (422, "validation"),
    errors.InputTooLong: (413, "validation"),
    errors.BatchTooLarge: (413, "validation"),
    errors.Overloaded: (429, "overloaded"),
    errors.InferenceFailed: (500, "backend"),
    errors.Unhealthy: (503, "unhealthy"),
    errors.ClientGone: (499, "validation"),
    errors.ModelError: (503, "unhealthy"),
    errors.DeviceUnavailable: (503, "unhealthy"),
    errors.Unsupported: (501, "backend"),
    errors.NotFound: (404, "validation"),
}
OPENAI_TYPE = {"validation": "invalid_request_error", "overloaded": "rate_limit_error", "backend": "server_error"}
OPENAI_TYPE |= {"unhealthy": "server_error", "auth": "authentication_error"}


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_domain_error_has_a_row() -> None:
    classes = _subclasses(DomainError)
    assert classes, "no domain errors found"
    assert classes == set(ERRORS), f"unmapped: {classes - set(ERRORS)}, stale rows: {set(ERRORS) - classes}"
    assert classes == set(DOCUMENTED), "a new domain error needs its documented status here"
    for cls in classes:
        assert (ERRORS[cls].status, ERRORS[cls].error_type) == DOCUMENTED[cls], cls.__name__


@pytest.fixture(scope="module")
def raising() -> TestClient:
    """An app with the service's handlers and one route that raises whatever error it is told to."""
    app = FastAPI()
    install_error_handlers(app)
    by_name = {cls.__name__: cls for cls in DOCUMENTED}

    @app.get("/raise/{name}")
    @app.get("/v1/raise/{name}")  # the same error, in OpenAI's shape
    async def _raise(name: str, oom: bool = False) -> None:
        cls = by_name[name]
        if cls is errors.InferenceFailed:
            raise errors.InferenceFailed(f"{name} happened", out_of_memory=oom)
        raise cls(f"{name} happened")

    return TestClient(app)


@pytest.mark.parametrize("cls", sorted(DOCUMENTED, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_each_error_over_http(raising: TestClient, cls: type[DomainError]) -> None:
    status, error_type = DOCUMENTED[cls]
    res = raising.get(f"/raise/{cls.__name__}")
    assert res.status_code == status
    assert res.json() == {"error": f"{cls.__name__} happened", "error_type": error_type}
    assert res.headers.get("retry-after") == ("1" if status == 429 else None)


@pytest.mark.parametrize("cls", sorted(DOCUMENTED, key=lambda c: c.__name__), ids=lambda c: c.__name__)
def test_each_error_in_openai_shape_under_v1(raising: TestClient, cls: type[DomainError]) -> None:
    status, error_type = DOCUMENTED[cls]
    res = raising.get(f"/v1/raise/{cls.__name__}")
    assert res.status_code == status
    code = {"overloaded": "rate_limit_exceeded"}.get(error_type, error_type)
    error = {"message": f"{cls.__name__} happened", "type": OPENAI_TYPE[error_type], "param": None, "code": code}
    assert res.json() == {"error": error}
    assert res.headers.get("retry-after") == ("1" if status == 429 else None)


def test_out_of_memory_is_503(raising: TestClient) -> None:
    res = raising.get("/raise/InferenceFailed", params={"oom": "true"})
    assert res.status_code == 503 and res.json()["error_type"] == "backend"


PROVOKED = [
    (errors.InvalidInput, "/embed", {"inputs": []}, "`inputs` must not be empty"),
    (errors.InvalidInput, "/v1/embeddings", {"input": "x", "dimensions": 385}, "exceeds the model's 384"),
    (errors.InputTooLong, "/embed", {"inputs": "word " * 600, "truncate": False}, "input 0 has"),
    (errors.InputTooLong, "/rerank", {"query": "q", "texts": ["w " * 600], "truncate": False}, "query + text 0"),
    (errors.BatchTooLarge, "/embed", {"inputs": ["x"] * 10_000}, "MAX_CLIENT_BATCH_SIZE=512"),
    (errors.BatchTooLarge, "/v1/rerank", {"query": "q", "documents": ["d"] * 513}, "MAX_CLIENT_BATCH_SIZE=512"),
    (errors.InvalidInput, "/v1/embeddings", {"input": [[101, 30522]]}, "token id 30522, outside the vocabulary"),
    (errors.InvalidInput, "/decode", {"ids": [5, 99999]}, "token id 99999, outside the vocabulary"),
    (errors.InputTooLong, "/v1/embeddings", {"input": [7592] * 300, "truncate": False}, "input 0 has 300 tokens"),
]


@pytest.mark.parametrize(("cls", "path", "body", "needle"), PROVOKED, ids=lambda v: getattr(v, "__name__", None))
def test_provoked_on_the_running_service(http, cls: type[DomainError], path: str, body: dict, needle: str) -> None:
    status, error_type = DOCUMENTED[cls]
    res = http.post(path, json=body)
    assert res.status_code == status, res.text
    if path.startswith("/v1/"):  # OpenAI's shape, which its client reads into APIError.message
        error = res.json()["error"]
        assert error["code"] == error_type and error["type"] == OPENAI_TYPE[error_type] and needle in error["message"]
    else:
        assert res.json()["error_type"] == error_type and needle in res.json()["error"]


def test_unknown_model_is_404_naming_the_served_ones(http) -> None:
    res = http.get("/v1/models/no-such-model")
    assert res.status_code == 404
    assert "not served here" in res.json()["error"]["message"]
    assert all(m["id"] in res.json()["error"]["message"] for m in http.get("/v1/models").json()["data"])
