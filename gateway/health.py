"""Service health of a gateway process: `callgate_postgres_up` (probed, and fed by the admin API)
and `callgate_redis_up` (probed between callbacks).

Postgres is off the gateway's ack and decision paths (policy snapshot and order replica live in
memory), so its health is reported, never a readiness condition: a gateway that turned unready
when Postgres blinks would stop acking callbacks it can take perfectly well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.keys import METRICS, REDIS, REDIS_KEYS
from gateway.live import DATABASE
from shared.health import HealthProbe, postgres_probe, redis_probe

POSTGRES_HEALTH = web.AppKey("postgres_health", HealthProbe)
REDIS_HEALTH = web.AppKey("redis_health", HealthProbe)


async def service_health(app: web.Application) -> AsyncIterator[None]:
    # After live_state: probes the same small pool the policy loads and the admin API use.
    metrics = app[METRICS]
    postgres = postgres_probe(app[DATABASE], metrics.postgres_up)
    # The ingest path sets callgate_redis_up on every batch; the probe keeps it true on a gateway
    # that receives no callbacks (CallgateRedisDown must fire on an idle gateway too).
    redis = redis_probe(app[REDIS], app[REDIS_KEYS].namespace("health:gateway"), metrics.redis_up)
    async with postgres.running(), redis.running():
        app[POSTGRES_HEALTH], app[REDIS_HEALTH] = postgres, redis
        yield
