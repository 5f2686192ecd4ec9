"""Is a backing service there? A 1/0 gauge per process, from a cheap periodic probe and from
what real queries learn in between.

The probe runs every `interval_s` (`SELECT 1`; `SET`+`DEL` in one MULTI) with its own timeout: a database that
hangs instead of refusing must read as down, and asyncpg's connect timeout (60 s) is far too
long for that. Code that has just run a real query may `record` its outcome, so the gauge
moves at once instead of at the next probe. Neither the gateway nor the workers stop or turn
unready on this gauge (docs/operations.md#postgres): it is for alerts and dashboards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.channels import stop_tasks
from shared.db import Pool

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 2.0

# What a failed probe raises when the service is away; anything else is a bug and propagates.
POSTGRES_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class HealthProbe:
    """The health of one service as this process last saw it (`up`), mirrored into `gauge`."""

    def __init__(
        self,
        service: str,
        check: Callable[[], Awaitable[object]],
        gauge: Gauge,
        *,
        errors: tuple[type[BaseException], ...],
        interval_s: float = PROBE_INTERVAL_S,
        timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self._service, self._check, self._gauge, self._errors = service, check, gauge, errors
        self._interval_s, self._timeout_s = interval_s, timeout_s
        self._up: bool | None = None  # unknown until the first probe or recorded outcome

    @property
    def up(self) -> bool:
        return bool(self._up)

    def record(self, *, ok: bool) -> None:
        """A real operation's outcome: ok, or failed because the service was not there."""
        if ok != self._up:
            # Transitions only: a down service must not log every five seconds per process.
            if not ok:
                logger.warning("%s unreachable", self._service)
            elif self._up is not None:
                logger.info("%s reachable again", self._service)
        self._up = ok
        self._gauge.set(1 if ok else 0)

    async def probe(self) -> bool:
        """Run the cheap check once, record and return its outcome."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._check()
        except self._errors:
            self.record(ok=False)
        else:
            self.record(ok=True)
        return self.up

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[HealthProbe]:
        """Probe in the background (first probe at once) while the block runs."""
        task = asyncio.create_task(self._loop(), name=f"{self._service}-health")
        try:
            yield self
        finally:
            await stop_tasks([task])

    async def _loop(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self._interval_s)


def postgres_probe(pool: Pool, gauge: Gauge, **timing: float) -> HealthProbe:
    """`SELECT 1` through the process's own pool: what its real queries would meet."""
    return HealthProbe("postgres", lambda: pool.fetchval("SELECT 1"), gauge, errors=POSTGRES_ERRORS, **timing)


def redis_probe(redis: Redis, key: str, gauge: Gauge, **timing: float) -> HealthProbe:
    """A write on the process's own client: a full Redis under `noeviction` still answers PING
    but refuses writes, and writes are what the queue needs. SET and DEL in one MULTI: refused
    as a whole when Redis is out of memory, and never leaves a key behind."""

    async def write() -> None:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(key, b"1")
            pipe.delete(key)
            await pipe.execute()

    return HealthProbe("redis", write, gauge, errors=REDIS_ERRORS, **timing)
