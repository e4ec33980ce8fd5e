"""API key, CORS allow-list, payload limit, client batch limit and the 429 overload answer."""

from __future__ import annotations

import asyncio
import time

import httpx

AUTH = {"Authorization": "Bearer s3cret"}


def test_api_key_required(strict_server) -> None:
    with strict_server.client() as c:
        missing = c.post("/embed", json={"inputs": "x"})
        assert missing.status_code == 401
        assert missing.json() == {"error": missing.json()["error"], "error_type": "auth"}
        assert missing.headers["www-authenticate"] == "Bearer"
        assert c.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.post("/embed", json={"inputs": "x"}, headers=AUTH).status_code == 200
        assert c.get("/info").status_code == 401
        assert c.get("/health").status_code == 200  # orchestrators probe without the key
        assert c.get("/metrics").status_code == 200


def test_api_key_header_forms(strict_server) -> None:
    """Both services take the key as `Authorization: Bearer` (OpenAI/TEI clients) or `X-API-Key`."""
    with strict_server.client() as c:
        assert c.post("/embed", json={"inputs": "x"}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/embed", json={"inputs": "x"}, headers={"authorization": "bearer s3cret"}).status_code == 200
        wrong = c.post("/embed", json={"inputs": "x"}, headers={"X-API-Key": "wrong"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["error"]
        assert c.post("/embed", json={"inputs": "x"}, headers={"Authorization": "Basic s3cret"}).status_code == 401


def test_cors_allow_list(strict_server) -> None:
    with strict_server.client() as c:
        pre = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        ok = c.options("/embed", headers={"Origin": "http://localhost:3000", **pre})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == "http://localhost:3000"
        bad = c.options("/embed", headers={"Origin": "http://evil.example", **pre})
        assert "access-control-allow-origin" not in bad.headers


def test_payload_limit(strict_server) -> None:
    with strict_server.client() as c:
        res = c.post("/embed", json={"inputs": "x" * 70_000}, headers=AUTH)
        assert res.status_code == 413 and "MAX_REQUEST_BYTES" in res.json()["error"]

        def chunks():  # no Content-Length: the limit must hold for streamed bodies too
            yield b'{"inputs": "'
            for _ in range(100):
                yield b"y" * 1000
            yield b'"}'

        streamed = c.post("/embed", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
        assert streamed.status_code == 413


def test_client_batch_limit_is_413(strict_server) -> None:
    with strict_server.client() as c:
        assert c.post("/embed", json={"inputs": ["a"] * 64}, headers=AUTH).status_code == 200
        res = c.post("/embed", json={"inputs": ["a"] * 65}, headers=AUTH)
        assert res.status_code == 413 and "MAX_CLIENT_BATCH_SIZE=64" in res.json()["error"]


def test_overload_answers_429(strict_server) -> None:
    """MAX_CONCURRENT_REQUESTS=2: a burst of 12 heavy requests gets some 429s, the rest succeed."""
    texts = ["a fairly long sentence about the immune response to viral infection " * 6] * 64

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=strict_server.url, timeout=120, headers=AUTH) as c:
            return await asyncio.gather(*(c.post("/embed", json={"inputs": texts}) for _ in range(12)))

    responses = asyncio.run(burst())
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 2 and codes.count(429) >= 1, codes
    rejected = next(r for r in responses if r.status_code == 429)
    assert rejected.json()["error_type"] == "overloaded" and int(rejected.headers["retry-after"]) >= 1
    with strict_server.client() as c:  # capacity comes back once the burst is done
        assert c.post("/embed", json={"inputs": "after"}, headers=AUTH).status_code == 200


def test_retry_after_is_the_queue_drain_time(strict_server) -> None:
    """Both slots busy with known work: the 429's Retry-After is about when that work ends, not a constant."""
    texts = ["the immune response to viral infection is a cascade of signals " * 20] * 44  # 44 x 222 tokens, 57 kB

    async def scenario() -> tuple[httpx.Response, float]:
        async with httpx.AsyncClient(base_url=strict_server.url, timeout=300, headers=AUTH) as c:
            assert (await c.post("/embed", json={"inputs": texts})).status_code == 200  # the rate is now measured
            busy = [asyncio.create_task(c.post("/embed", json={"inputs": texts})) for _ in range(2)]
            for _ in range(500):  # both admitted
                if (await c.get("/info")).json()["queue"]["in_flight"] >= 2:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # and tokenised into the queue
            refused = await c.post("/embed", json={"inputs": "one more"})
            asked = time.perf_counter()
            assert [r.status_code for r in await asyncio.gather(*busy)] == [200, 200]
            return refused, time.perf_counter() - asked

    refused, actual = asyncio.run(scenario())
    assert refused.status_code == 429, refused.text
    retry_after = int(refused.headers["retry-after"])
    assert "drain" in refused.json()["error"]
    assert retry_after >= 2, (retry_after, actual)  # 2 x 10k tokens on two shared cores: seconds of work
    assert actual / 3 <= retry_after <= 3 * actual + 1, (retry_after, actual)
