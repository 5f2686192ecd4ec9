"""Postgres health of a gateway process: `callgate_postgres_up`, probed and fed by the admin API.

Postgres is off the gateway's ack and decision paths (policy snapshot and order replica live in
memory), so its health is reported, never a readiness condition: a gateway that turned unready
when Postgres blinks would stop acking callbacks it can take perfectly well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.keys import METRICS
from gateway.live import DATABASE
from shared.health import HealthProbe, postgres_probe

POSTGRES_HEALTH = web.AppKey("postgres_health", HealthProbe)


async def postgres_health(app: web.Application) -> AsyncIterator[None]:
    # After live_state: probes the same small pool the policy loads and the admin API use.
    async with postgres_probe(app[DATABASE], app[METRICS].postgres_up).running() as probe:
        app[POSTGRES_HEALTH] = probe
        yield
