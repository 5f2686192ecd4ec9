"""store_event: one bad row never holds back the others, and nothing is silently dropped."""

from __future__ import annotations

import time

import asyncpg
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio import Redis

from shared.config import Settings
from shared.jobs import STORE_EVENT, EventEnvelope
from shared.queue import deserialize_job, serialize_job
from tests.conftest import RunWorker, sample_value


def _envelope(key: str, *, kind: str = "transaction.pending", body: bytes | None = None) -> EventEnvelope:
    raw = body or b'{"id": "%s", "status": "PENDING"}' % key.encode()
    return EventEnvelope("wyre", kind, key, time.time(), raw, f"req-{key}")


async def _enqueue(settings: Settings, *events: EventEnvelope) -> None:
    pool: ArqRedis = await create_pool(
        RedisSettings.from_dsn(settings.redis_url), job_serializer=serialize_job, job_deserializer=deserialize_job
    )
    try:
        for event in events:
            await pool.enqueue_job(STORE_EVENT, event.to_json(), _job_id=event.job_id, _queue_name=settings.queue_name)
    finally:
        await pool.aclose()


async def test_a_nul_in_the_json_is_dropped_from_the_payload_and_kept_in_the_raw_body(
    settings: Settings, run_worker: RunWorker, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    body = b'{"id": "TR_NUL", "status": "PENDING", "message": "a\\u0000b"}'
    await _enqueue(settings, _envelope("TR_NUL:PENDING", body=body), _envelope("TR_OK:PENDING"))
    await run_worker(settings)
    rows = {r["idempotency_key"]: r for r in await db.fetch("SELECT idempotency_key, payload, raw_body FROM events")}
    assert set(rows) == {"TR_NUL:PENDING", "TR_OK:PENDING"}
    assert rows["TR_NUL:PENDING"]["payload"]["message"] == "a\ufffdb"
    assert bytes(rows["TR_NUL:PENDING"]["raw_body"]) == body


async def test_a_row_postgres_refuses_is_dead_lettered_and_its_batch_mates_are_stored(
    settings: Settings, run_worker: RunWorker, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    poison = _envelope("TR_POISON:PENDING", kind="bad\x00kind")  # text columns cannot hold NUL
    good = [_envelope(f"TR_GOOD{i}:PENDING") for i in range(5)]
    await _enqueue(settings, poison, *good)
    metrics = await run_worker(settings)
    keys = {r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM events")}
    assert keys == {e.idempotency_key for e in good}
    letters = await db.fetch("SELECT job, ref, args, reason FROM dead_letters")
    assert [(r["job"], r["ref"]) for r in letters] == [(STORE_EVENT, "wyre:TR_POISON:PENDING")]
    assert EventEnvelope.from_json(letters[0]["args"][0]).idempotency_key == "TR_POISON:PENDING"
    assert sample_value(metrics, "callgate_events_stored_total", {"provider": "wyre", "result": "dead_lettered"}) == 1
