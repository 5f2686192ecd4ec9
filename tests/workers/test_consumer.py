"""The batched consumer (`workers.consumer`) and producer (`JobQueue.enqueue`) against real Redis.

Both speak arq's key layout: a stock arq `Worker` drains what the gateway and `JobQueue` wrote,
two of our consumers share one queue without ever running a job twice at once, and arq's retry,
try-limit and timeout rules hold.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from arq import Retry
from arq.connections import RedisSettings
from arq.worker import Worker, func
from redis.asyncio import Redis

from callgate.demo import wyre_transaction
from shared.config import Settings
from shared.logging import correlation_id
from shared.metrics import Metrics
from shared.queue import (
    ARQ_IN_PROGRESS_PREFIX,
    ARQ_JOB_PREFIX,
    ARQ_RETRY_PREFIX,
    Coalescer,
    JobQueue,
    deserialize_job,
    serialize_job,
)
from tests.gateway.test_wyre import Gateway
from workers.consumer import Consumer, JobSpec
from workers.settings import job_functions, worker_hooks

Job = Callable[..., Awaitable[Any]]


def _queue(settings: Settings, redis: Redis) -> JobQueue:
    return JobQueue(redis, queue_name=settings.queue_name, dedup_ttl_s=3600)


def _consumer(
    settings: Settings, *jobs: tuple[str, Job], max_tries: int = 5, timeout_s: float = 5, **kw: Any
) -> Consumer:
    specs = [JobSpec(name, job, max_tries, timeout_s) for name, job in jobs]
    options: dict[str, Any] = {"burst": True, "poll_delay": 0, **kw}
    return Consumer(Redis.from_url(settings.redis_url), queue_name=settings.queue_name, functions=specs, **options)


async def _drain(*consumers: Consumer) -> None:
    try:
        await asyncio.wait_for(asyncio.gather(*(c.main() for c in consumers)), 20)
    finally:
        for c in consumers:
            await c.close()


async def test_a_stock_arq_worker_drains_what_the_gateway_and_the_job_queue_wrote(
    settings: Settings, gateway: Gateway, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await gateway(settings)
    assert settings.providers.wyre is not None
    path = f"/wyre/v3/wallet-callbacks/{settings.providers.wyre.path_token}"
    for i in range(5):
        body = wyre_transaction("PENDING", f"TR_ARQ{i}")
        assert (await client.post(path, data=body, headers={"Content-Type": "application/json"})).status == 200
    seen: list[tuple[str, int]] = []

    async def note(ctx: dict[str, Any], word: str) -> None:
        seen.append((word, int(ctx["job_try"])))

    queue = _queue(settings, redis)
    assert await queue.enqueue("note", "now", job_id="note:1")
    assert not await queue.enqueue("note", "again", job_id="note:1")  # arq's rule: that id exists
    assert await queue.enqueue("note", "later", job_id="note:2", at=time.time() + 0.3)

    on_startup, on_shutdown = worker_hooks(settings, Metrics())
    # arq types job coroutines and hooks narrowly (its own Protocols); ours have the same shape.
    ours = [
        func(s.coroutine, name=s.name, max_tries=s.max_tries, timeout=s.timeout_s)  # type: ignore[arg-type]
        for s in job_functions(settings, Metrics())
    ]
    worker = Worker(
        functions=[*ours, func(note, name="note")],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name=settings.queue_name,
        on_startup=on_startup,  # type: ignore[arg-type]
        on_shutdown=on_shutdown,  # type: ignore[arg-type]
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
        burst=True,
        poll_delay=0,
        keep_result=0,
        handle_signals=False,
    )
    try:
        assert await asyncio.wait_for(worker.run_check(), 20) == 7
    finally:
        await worker.close()
    keys = {r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM events")}
    assert keys == {f"TR_ARQ{i}:PENDING" for i in range(5)}
    assert sorted(seen) == [("later", 1), ("now", 1)]
    assert await redis.zcard(settings.queue_name) == 0


async def test_two_consumers_share_a_queue_and_never_run_a_job_twice_at_once(settings: Settings, redis: Redis) -> None:
    running: set[str] = set()
    runs: Counter[str] = Counter()
    by_worker: Counter[int] = Counter()
    overlaps: list[str] = []

    def job(worker: int) -> Job:
        async def work(ctx: dict[str, Any], n: int) -> None:
            job_id = str(ctx["job_id"])
            if job_id in running:
                overlaps.append(job_id)
            running.add(job_id)
            await asyncio.sleep(0.001 * (n % 5))
            running.discard(job_id)
            runs[job_id] += 1
            by_worker[worker] += 1

        return work

    queue = _queue(settings, redis)
    await asyncio.gather(*(queue.enqueue("work", i, job_id=f"work:{i}") for i in range(400)))
    first = _consumer(settings, ("work", job(1)), max_jobs=20)
    second = _consumer(settings, ("work", job(2)), max_jobs=20)
    await _drain(first, second)
    assert overlaps == []
    assert runs == Counter({f"work:{i}": 1 for i in range(400)})
    assert by_worker[1] > 0 and by_worker[2] > 0  # both took part
    assert await redis.zcard(settings.queue_name) == 0
    assert not [k async for k in redis.scan_iter("arq:*:work:*")]  # job, retry and in-progress keys gone


async def test_retry_defers_and_counts_tries_and_a_job_past_max_tries_is_dropped(
    settings: Settings, redis: Redis
) -> None:
    tries: list[tuple[int, float]] = []

    async def flaky(ctx: dict[str, Any]) -> None:
        tries.append((int(ctx["job_try"]), time.monotonic()))
        if ctx["job_try"] < 3:
            raise Retry(defer=0.2)

    async def never(ctx: dict[str, Any]) -> None:
        raise AssertionError("a job past max_tries must not run")

    queue = _queue(settings, redis)
    await queue.enqueue("flaky", job_id="flaky")
    await queue.enqueue("never", job_id="never")
    await redis.set(ARQ_RETRY_PREFIX + "never", 3)  # claimed three times before, by workers that died
    await _drain(_consumer(settings, ("flaky", flaky), ("never", never), max_tries=3))
    assert [t for t, _ in tries] == [1, 2, 3]
    assert tries[1][1] - tries[0][1] >= 0.19 and tries[2][1] - tries[1][1] >= 0.19  # scores are whole ms
    assert await redis.exists(ARQ_JOB_PREFIX + "never", ARQ_JOB_PREFIX + "flaky") == 0


async def test_a_timed_out_job_fails_and_a_stopped_consumer_hands_its_running_job_back(
    settings: Settings, redis: Redis
) -> None:
    started = asyncio.Event()

    async def slow(ctx: dict[str, Any], seconds: float) -> None:
        started.set()
        await asyncio.sleep(seconds)

    queue = _queue(settings, redis)
    await queue.enqueue("slow", 1.0, job_id="slow:timeout")
    consumer = _consumer(settings, ("slow", slow), timeout_s=0.1)
    await _drain(consumer)
    assert consumer.jobs_failed == 1 and await redis.zcard(settings.queue_name) == 0

    await queue.enqueue("slow", 30.0, job_id="slow:stopped")
    started.clear()
    consumer = _consumer(settings, ("slow", slow), timeout_s=60, burst=False, shutdown_grace_s=0.1)
    running = asyncio.create_task(consumer.main())
    await asyncio.wait_for(started.wait(), 5)
    assert await redis.exists(ARQ_IN_PROGRESS_PREFIX + "slow:stopped") == 1
    consumer.stop()
    await asyncio.wait_for(running, 5)
    await consumer.close()
    # Handed back: still queued, due now, no longer marked in progress, so any worker runs it again.
    assert await redis.zscore(settings.queue_name, "slow:stopped") is not None
    assert await redis.exists(ARQ_IN_PROGRESS_PREFIX + "slow:stopped") == 0


async def test_a_coalesced_batch_serves_every_caller_in_a_context_of_its_own() -> None:
    seen: list[str | None] = []

    async def flush(items: list[int]) -> list[int]:
        seen.append(correlation_id.get())
        return [i * 2 for i in items]

    batch: Coalescer[int, int] = Coalescer(flush)

    async def call(i: int) -> list[int]:
        correlation_id.set(f"request-{i}")
        return await batch([i])

    assert await asyncio.gather(*(call(i) for i in range(3))) == [[0], [2], [4]]
    assert seen == [None]  # one round trip, and no caller's id on its log lines
