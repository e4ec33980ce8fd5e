"""Two backend replicas on one PostgreSQL catalog: a key revoked, a role lowered or a user disabled through one
replica is refused by the other within 2 s (credentials are looked up per request, never cached by a process),
and a session started on one replica works on the other."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from access_harness import ADMIN, app_running, client, settings_for, signed_in

pytestmark = pytest.mark.anyio
PASSWORD = "a-good-password"
WITHIN_S = 2.0


async def refused_within(c: httpx.AsyncClient, method: str, path: str, status: int, **kwargs: object) -> float:
    """Seconds until `c` gets `status` (polled), failing past WITHIN_S."""
    start = time.monotonic()
    while True:
        r = await c.request(method, path, **kwargs)  # type: ignore[arg-type]
        elapsed = time.monotonic() - start
        if r.status_code == status:
            return elapsed
        assert elapsed < WITHIN_S, f"{method} {path} still {r.status_code} after {elapsed:.2f}s: {r.text}"


async def test_revocation_and_disabling_reach_the_other_replica_within_2_s(tmp_path: Path, database_url: str) -> None:
    a_settings = settings_for(tmp_path / "a", database_url=database_url)
    b_settings = settings_for(tmp_path / "b", database_url=database_url)
    async with app_running(a_settings) as a, app_running(b_settings) as b:
        admin_a = await signed_in(a, *ADMIN)
        body = {"email": "ed@example.test", "role": "editor", "password": PASSWORD}
        assert (await admin_a.post("/api/users", json=body)).status_code == 201
        ed_b = await signed_in(b, "ed@example.test", PASSWORD)  # a session started on B ...
        async with client(a, cookies=ed_b.cookies) as ed_on_a:  # ... is good on A too
            assert (await ed_on_a.get("/api/auth/me")).json()["email"] == "ed@example.test"
            key = (await ed_on_a.post("/api/keys", json={"name": "k", "scope": "write"})).json()
        by_key_b = client(b, headers={"X-API-Key": key["token"]})
        assert (await by_key_b.post("/api/collections", json={"name": "edc"})).status_code == 201

        # The role lowered on A: B refuses what only an editor may do.
        assert (await admin_a.patch("/api/users/ed@example.test", json={"role": "viewer"})).status_code == 200
        took = [await refused_within(by_key_b, "POST", "/api/collections", 403, json={"name": "edc2"})]
        assert (await admin_a.patch("/api/users/ed@example.test", json={"role": "editor"})).status_code == 200

        # The key revoked on A: B refuses it.
        assert (await admin_a.delete(f"/api/keys/{key['id']}")).status_code == 204
        took.append(await refused_within(by_key_b, "GET", "/api/collections", 401))

        # The user disabled on A: its session on B is refused, and so is a new key made before.
        async with client(b, cookies=ed_b.cookies) as again:
            key2 = (await again.post("/api/keys", json={"name": "k2", "scope": "read"})).json()["token"]
        assert (await admin_a.patch("/api/users/ed@example.test", json={"disabled": True})).status_code == 200
        took.append(await refused_within(ed_b, "GET", "/api/auth/me", 401))
        async with client(b, headers={"X-API-Key": key2}) as by_key2_b:
            took.append(await refused_within(by_key2_b, "GET", "/api/collections", 401))
        print(f"refused on the other replica after {', '.join(f'{t * 1000:.0f} ms' for t in took)}")
        for c in (admin_a, ed_b, by_key_b):
            await c.aclose()


async def test_failed_sign_ins_are_counted_across_replicas(tmp_path: Path, database_url: str) -> None:
    """An attacker spreading guesses over replicas gains nothing: the counts live in the shared catalog."""
    limits = {"login_max_failures": 4, "login_max_failures_per_address": 100}
    async with (
        app_running(settings_for(tmp_path / "a", database_url=database_url, **limits)) as a,
        app_running(settings_for(tmp_path / "b", database_url=database_url, **limits)) as b,
    ):
        wrong = {"email": ADMIN[0], "password": "not-the-password"}
        async with client(a) as on_a, client(b) as on_b:
            for replica in (on_a, on_b, on_a, on_b):
                assert (await replica.post("/api/auth/login", json=wrong)).status_code == 401
            for replica in (on_a, on_b):
                r = await replica.post("/api/auth/login", json={"email": ADMIN[0], "password": ADMIN[1]})
                assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
