"""Worker health gauges: `callgate_postgres_up` and `callgate_redis_up`, probed in the background,
and `callgate_dead_letters_open` (dead letters nobody has replayed yet), counted every 30 s.

A worker keeps running while Postgres or Redis is away (its jobs retry with backoff); these
gauges say why nothing is moving. Entered with the other worker resources in `workers/settings.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from prometheus_client import Gauge
from redis.asyncio import Redis

from shared.channels import stop_tasks
from shared.db import Pool
from shared.health import POSTGRES_ERRORS, HealthProbe, postgres_probe, redis_probe
from shared.keys import RedisKeys
from shared.metrics import Metrics
from workers.deps import JobCtx, deps

logger = logging.getLogger(__name__)

CENSUS_INTERVAL_S = 30.0


@contextlib.asynccontextmanager
async def health_probes(pool: Pool, redis: Redis, keys: RedisKeys, metrics: Metrics) -> AsyncIterator[HealthProbe]:
    """Probe both services while the block runs; yields the Postgres probe (for `record`)."""
    postgres = postgres_probe(pool, metrics.postgres_up)
    census = asyncio.create_task(count_dead_letters(pool, metrics.dead_letters_open), name="dead-letter-census")
    try:
        async with postgres.running(), redis_probe(redis, keys.namespace("health:worker"), metrics.redis_up).running():
            yield postgres
    finally:
        await stop_tasks([census])


async def count_dead_letters(pool: Pool, gauge: Gauge, *, interval_s: float = CENSUS_INTERVAL_S) -> None:
    """Forever: open dead letters per job into `gauge` (0 for a job whose letters were replayed)."""
    seen: set[str] = set()
    while True:
        try:
            # The partial index dead_letters_open covers exactly these rows.
            rows = await pool.fetch(
                "SELECT job, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY job"
            )
        except POSTGRES_ERRORS as e:
            logger.debug("dead letter census skipped: %s", type(e).__name__)  # the probe says why
        else:
            counts = {r["job"]: r["n"] for r in rows}
            for job in seen | set(counts):
                gauge.labels(job).set(counts.get(job, 0))
            seen |= set(counts)
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def health_resources(ctx: JobCtx) -> AsyncIterator[None]:
    d = deps(ctx)
    async with health_probes(d.pool, d.redis, d.keys, d.metrics):
        yield
