"""Worker health gauges: `callgate_postgres_up` and `callgate_redis_up`, probed in the background.

A worker keeps running while Postgres or Redis is away (its jobs retry with backoff); these
gauges say why nothing is moving. Entered with the other worker resources in `workers/settings.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from shared.db import Pool
from shared.health import HealthProbe, postgres_probe, redis_probe
from shared.keys import RedisKeys
from shared.metrics import Metrics
from workers.deps import JobCtx, deps


@contextlib.asynccontextmanager
async def health_probes(pool: Pool, redis: Redis, keys: RedisKeys, metrics: Metrics) -> AsyncIterator[HealthProbe]:
    """Probe both services while the block runs; yields the Postgres probe (for `record`)."""
    postgres = postgres_probe(pool, metrics.postgres_up)
    async with postgres.running(), redis_probe(redis, keys.namespace("health:worker"), metrics.redis_up).running():
        yield postgres


@contextlib.asynccontextmanager
async def health_resources(ctx: JobCtx) -> AsyncIterator[None]:
    d = deps(ctx)
    async with health_probes(d.pool, d.redis, d.keys, d.metrics) as postgres:
        # Jobs that learn Postgres is away may record it at once instead of at the next probe.
        d.runtimes["postgres_health"] = postgres
        yield
