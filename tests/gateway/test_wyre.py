"""Wyre v3 wallet callbacks end to end: gateway → Redis → burst worker → Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from callgate.demo import wyre_transaction
from callgate.embedded import EmbeddedRedis
from gateway.keys import METRICS
from shared.config import Settings, WyreSettings
from shared.providers import wyre
from tests.conftest import WYRE_TOKEN, RunWorker, sample_value, with_providers

Client = TestClient[web.Request, web.Application]
Gateway = Callable[[Settings], Awaitable[Client]]
URL = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"


def _outcome(client: Client, outcome: str) -> float:
    return sample_value(client.app[METRICS], "callgate_callbacks_total", {"provider": "wyre", "outcome": outcome})


async def _rows(db: asyncpg.Pool[asyncpg.Record]) -> list[asyncpg.Record]:
    return await db.fetch("SELECT provider, kind, idempotency_key, payload, raw_body FROM events ORDER BY id")


async def test_pending_and_confirmed_are_two_events_even_when_each_is_sent_three_times(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await gateway(settings)
    bodies = [wyre_transaction("PENDING", "TR_7NVXRFRBZJV"), wyre_transaction("CONFIRMED", "TR_7NVXRFRBZJV")]
    answers = []
    for body in bodies:
        for _ in range(3):
            response = await client.post(URL, data=body, headers={"Content-Type": "application/json"})
            assert response.status == 200
            answers.append((await response.json())["status"])
    assert answers == ["accepted", "duplicate", "duplicate"] * 2
    await run_worker(settings)
    rows = await _rows(db)
    assert [(r["kind"], r["idempotency_key"]) for r in rows] == [
        ("transaction.pending", "TR_7NVXRFRBZJV:PENDING"),
        ("transaction.confirmed", "TR_7NVXRFRBZJV:CONFIRMED"),
    ]
    # The stored payload is the body itself, exact numbers included; the raw bytes are kept too.
    assert rows[0]["payload"]["amount"] == 0.01653538
    assert bytes(rows[0]["raw_body"]) == bodies[0]
    assert _outcome(client, "accepted") == 2
    assert _outcome(client, "duplicate") == 4


async def test_fifty_concurrent_identical_deliveries_make_one_job_and_one_row(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await gateway(settings)
    body = wyre_transaction("CONFIRMED", "TR_CONCURRENT1")
    responses = await asyncio.gather(*(client.post(URL, data=body) for _ in range(50)))
    statuses = [(r.status, (await r.json())["status"]) for r in responses]
    assert statuses.count((200, "accepted")) == 1
    assert statuses.count((200, "duplicate")) == 49
    assert await redis.zcard(settings.queue_name) == 1
    metrics = await run_worker(settings)
    assert sample_value(metrics, "callgate_jobs_total", {"job": "store_event", "outcome": "ok"}) == 1
    assert len(await _rows(db)) == 1


async def test_an_event_enqueued_twice_is_stored_once(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    """The Postgres backstop: if the Redis marker is lost (expired, failover), one row still."""
    client = await gateway(settings)
    body = wyre_transaction("PENDING", "TR_BACKSTOP1")
    assert (await client.post(URL, data=body)).status == 200
    await run_worker(settings)
    await redis.flushdb()  # the dedup marker is gone, as after a Redis failover without AOF
    assert (await (await client.post(URL, data=body)).json())["status"] == "accepted"
    metrics = await run_worker(settings)
    assert sample_value(metrics, "callgate_events_stored_total", {"provider": "wyre", "result": "present"}) == 1
    assert len(await _rows(db)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (
            orjson.dumps(
                {"status": "PENDING", "createdAt": 1, "source": "s", "dest": "d", "currency": "BTC", "amount": 1}
            ),
            "id",
        ),
        (
            orjson.dumps({"id": "TR_1", "createdAt": 1, "source": "s", "dest": "d", "currency": "BTC", "amount": 1}),
            "status",
        ),
        (
            orjson.dumps(
                {
                    "id": 5,
                    "status": "PENDING",
                    "createdAt": 1,
                    "source": "s",
                    "dest": "d",
                    "currency": "BTC",
                    "amount": 1,
                }
            ),
            "id",
        ),
        (
            orjson.dumps(
                {
                    "id": "TR_1",
                    "status": "PENDING",
                    "createdAt": "yesterday",
                    "source": "s",
                    "dest": "d",
                    "currency": "BTC",
                    "amount": 1,
                }
            ),
            "createdAt",
        ),
        (
            orjson.dumps(
                {
                    "id": "TR_1",
                    "status": "PENDING",
                    "createdAt": 1,
                    "source": "s",
                    "dest": "d",
                    "currency": "BTC",
                    "amount": "1",
                }
            ),
            "amount",
        ),
        (
            orjson.dumps(
                {
                    "id": "TR_1",
                    "status": "PENDING",
                    "createdAt": 1,
                    "source": "s",
                    "dest": "d",
                    "currency": "BTC",
                    "amount": True,
                }
            ),
            "amount",
        ),
    ],
)
async def test_invalid_bodies_get_400_naming_the_field_and_create_nothing(
    gateway: Gateway, settings: Settings, redis: Redis, body: bytes, field: str
) -> None:
    client = await gateway(settings)
    response = await client.post(URL, data=body)
    assert response.status == 400
    assert (await response.json())["detail"].startswith(field)
    assert _outcome(client, "invalid") == 1
    assert await redis.dbsize() == 0


async def test_wrong_path_token_is_404_counted_and_creates_nothing(
    gateway: Gateway, settings: Settings, redis: Redis
) -> None:
    client = await gateway(settings)
    response = await client.post("/wyre/v3/wallet-callbacks/not-the-token", data=wyre_transaction("PENDING", "TR_X"))
    assert response.status == 404
    assert _outcome(client, "unauthorized") == 1
    assert await redis.dbsize() == 0


async def test_body_over_the_cap_is_413_and_creates_nothing(gateway: Gateway, settings: Settings, redis: Redis) -> None:
    client = await gateway(dataclasses.replace(settings, max_body_bytes=2048))
    response = await client.post(URL, data=b"{" + b" " * 4096 + b"}")
    assert response.status == 413
    assert _outcome(client, "too_large") == 1
    assert await redis.dbsize() == 0


async def test_signature_is_required_and_checked_when_a_secret_is_configured(
    gateway: Gateway, settings: Settings, redis: Redis
) -> None:
    secret = "first-secret-key-of-the-account"
    client = await gateway(with_providers(settings, wyre=WyreSettings(path_token=WYRE_TOKEN, signing_secret=secret)))
    body = wyre_transaction("PENDING", "TR_SIGNED1")
    missing = await client.post(URL, data=body)
    wrong = await client.post(URL, data=body, headers={"X-Api-Signature": wyre.sign(body, "another-secret")})
    tampered = await client.post(URL, data=body + b" ", headers={"X-Api-Signature": wyre.sign(body, secret)})
    assert [missing.status, wrong.status, tampered.status] == [401, 401, 401]
    assert await redis.dbsize() == 0
    good = await client.post(URL, data=body, headers={"X-Api-Signature": wyre.sign(body, secret).upper()})
    assert good.status == 200
    assert _outcome(client, "unauthorized") == 3
    assert _outcome(client, "accepted") == 1


async def test_redis_down_callbacks_are_spooled_answered_200_and_stored_after_redis_returns(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record], tmp_path: Path
) -> None:
    private = EmbeddedRedis(tmp_path / "redis", appendfsync="always").start()
    try:
        local = dataclasses.replace(settings, redis_url=private.url, spool_replay_interval_seconds=0.1)
        client = await gateway(local)
        assert (await client.post(URL, data=wyre_transaction("PENDING", "TR_BEFORE"))).status == 200
        private.kill()
        during = [wyre_transaction("PENDING", f"TR_DURING{i}") for i in range(5)]
        for body in during:
            response = await client.post(URL, data=body)
            assert response.status == 200
            assert (await response.json())["status"] == "spooled"
        assert _outcome(client, "spooled") == 5
        private.start()  # same port, same AOF: the job enqueued before the kill is still there
        for _ in range(100):
            if not os.listdir(local.spool_dir):  # every spool file replayed and removed
                break
            await asyncio.sleep(0.05)
        await run_worker(local)
        keys = [r["idempotency_key"] for r in await _rows(db)]
        assert sorted(keys) == sorted(["TR_BEFORE:PENDING"] + [f"TR_DURING{i}:PENDING" for i in range(5)])
    finally:
        private.stop()


async def test_redis_and_spool_both_unavailable_is_503_and_nothing_half_written(
    gateway: Gateway, settings: Settings, db: asyncpg.Pool[asyncpg.Record], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the spool cannot be a folder under a file")
    local = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0", spool_dir=str(blocker / "spool"))
    client = await gateway(local)
    response = await client.post(URL, data=wyre_transaction("PENDING", "TR_NOWHERE"))
    assert response.status == 503
    assert _outcome(client, "unavailable") == 1
    assert blocker.read_text() == "the spool cannot be a folder under a file"
    assert await _rows(db) == []
