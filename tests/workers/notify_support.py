"""Helpers for notification tests: a worker's deps built by hand, events stored the real way."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis

from callgate.demo import wyre_transaction
from shared.config import Settings
from shared.db import Pool, create_pool
from shared.jobs import EventEnvelope
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.notify.breaker import Breaker
from shared.notify.schedule import DeliveryPolicy
from workers.consumer import Consumer
from workers.deliver import NotifyRuntime, outcome_records
from workers.deps import WorkerDeps
from workers.settings import build_worker, job_queue
from workers.writer import EventWriter


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Env:
    deps: WorkerDeps
    runtime: NotifyRuntime


@asynccontextmanager
async def notify_env(
    settings: Settings, *, policy: DeliveryPolicy | None = None, clock: Callable[[], float] = time.time
) -> AsyncIterator[Env]:
    """What a worker process builds at start-up, for calling `deliver` without a consumer."""
    policy = policy or DeliveryPolicy()
    pool = await create_pool(settings.database_url, max_size=4)
    arq = Redis.from_url(settings.redis_url)
    writer = EventWriter(pool)
    writer.start()
    keys = RedisKeys(settings.key_prefix)
    deps = WorkerDeps(settings, pool, arq, keys, Metrics(), writer, job_queue(settings, arq))
    breaker = Breaker(
        arq,
        keys,
        threshold=policy.breaker_threshold,
        cooldown_s=policy.breaker_cooldown_s,
        max_inflight=policy.max_inflight,
        slot_ttl_s=policy.timeout_s + 5,
    )
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield Env(deps, NotifyRuntime(session, policy, breaker, outcome_records(deps), clock, random.Random(7)))
    finally:
        await writer.stop()
        await pool.close()
        await arq.aclose()


def wyre_event(tx: str | None = None, status: str = "CONFIRMED") -> EventEnvelope:
    tx = tx or f"TR_{secrets.token_hex(5).upper()}"
    return EventEnvelope(
        provider="wyre",
        kind=f"transaction.{status.lower()}",
        idempotency_key=f"{tx}:{status}",
        received_at=time.time(),
        raw_body=wyre_transaction(status, tx),
        request_id=secrets.token_hex(8),
    )


async def store(pool: Pool, *events: EventEnvelope) -> None:
    """Store events through the real group-commit writer (event rows and outbox together)."""
    writer = EventWriter(pool)
    writer.start()
    try:
        await asyncio.gather(*(writer.store(e) for e in events))
    finally:
        await writer.stop()


async def until(condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_worker(settings: Settings, **overrides: object) -> AsyncIterator[Metrics]:
    """A real (non-burst) worker in this process, for tests whose queue never empties."""
    metrics = Metrics()
    worker: Consumer = build_worker(settings, metrics=metrics, poll_delay=0.01, **overrides)
    task = asyncio.create_task(worker.main())
    try:
        yield metrics
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.close()
