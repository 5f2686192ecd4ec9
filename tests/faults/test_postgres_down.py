"""PostgreSQL SIGKILLed under a running worker and started again a few seconds later.

The store_event jobs fail, are retried by arq on `workers.store.BACKOFF_S`, and all complete once
PostgreSQL is back: every callback stored once, nothing left in the queue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections import Counter

import asyncpg
import pytest
from redis.asyncio import Redis

from callgate.embedded import EmbeddedPostgres, EmbeddedRedis
from gateway.app import create_app
from shared.config import Settings
from shared.db import create_pool
from shared.metrics import Metrics
from tests.conftest import AiohttpClient, sample_value
from tests.faults.processes import eventually
from tests.faults.routes import ASYNC_ROUTES, build_all
from workers.settings import build_worker
from workers.store import BACKOFF_S

pytestmark = [pytest.mark.fault, pytest.mark.slow]
WYRE = next(r for r in ASYNC_ROUTES if r.provider == "wyre")
BATCHES = (20, 20)  # callbacks sent before the outage, and during it
DOWN_S = 3.0


@pytest.mark.timeout(90)
async def test_postgres_outage_is_retried_with_backoff_and_nothing_is_lost(
    private_redis: EmbeddedRedis, private_postgres: EmbeddedPostgres, settings: Settings, aiohttp_client: AiohttpClient
) -> None:
    configured = WYRE.configure(
        dataclasses.replace(settings, redis_url=private_redis.url, database_url=private_postgres.url), None
    )
    base = secrets.randbelow(10**8) * 1000
    callbacks = await build_all(WYRE, [str(base + i) for i in range(sum(BATCHES))])
    client = await aiohttp_client(create_app(configured, metrics=Metrics()))
    metrics = Metrics()
    # A long-running worker (not burst) that polls often; retries are arq's own, with our backoff.
    worker = build_worker(configured, metrics=metrics, poll_delay=0.05)
    running = asyncio.create_task(worker.main())
    try:
        for callback in callbacks[: BATCHES[0]]:
            assert (await client.post(callback.path, data=callback.body, headers=callback.headers)).status == 200
        await asyncio.to_thread(private_postgres.kill)
        down_at = time.monotonic()
        for callback in callbacks[BATCHES[0] :]:
            assert (await client.post(callback.path, data=callback.body, headers=callback.headers)).status == 200
        await asyncio.sleep(max(0.0, DOWN_S - (time.monotonic() - down_at)))
        retried_while_down = sample_value(metrics, "callgate_jobs_total", {"job": "store_event", "outcome": "retry"})
        await asyncio.to_thread(private_postgres.start)
        back_at = time.monotonic()
        done = await eventually(lambda: _settled(configured, len(callbacks)), limit_s=sum(BACKOFF_S[:4]) + 5)
        completed_s = time.monotonic() - back_at
        assert done
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
    pool = await create_pool(private_postgres.url, max_size=1)
    rows = await pool.fetch("SELECT idempotency_key FROM events")
    await pool.close()
    assert Counter(r["idempotency_key"] for r in rows) == Counter(c.key for c in callbacks)
    assert retried_while_down > 0
    assert sample_value(metrics, "callgate_jobs_total", {"job": "store_event", "outcome": "failed"}) == 0
    print(
        f"\npostgres down {DOWN_S:.0f}s: {int(retried_while_down)} retries while down, "
        f"all {len(callbacks)} stored {completed_s:.1f}s after it returned, lost 0, duplicated 0"
    )


async def _settled(settings: Settings, expected: int) -> bool:
    """Every row in PostgreSQL and no job left (a retried job may still be due after its row landed)."""
    redis = Redis.from_url(settings.redis_url)
    try:
        conn = await asyncpg.connect(settings.database_url)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return await conn.fetchval("SELECT count(*) FROM events") == expected and not await redis.zcard(
            settings.queue_name
        )
    finally:
        await conn.close()
        await redis.aclose()
