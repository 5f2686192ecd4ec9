"""A `callgate worker` process SIGKILLed while jobs run, then started again.

Every callback is stored once, every notification is delivered with the webhook-id it was
given when its row was written (a delivery repeated after the crash carries the same id), and
nothing is left in the queue.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from callgate.embedded import EmbeddedRedis
from gateway.app import create_app
from shared.config import Settings
from shared.db import Pool
from shared.metrics import Metrics
from shared.notify import subscribers
from tests.conftest import AiohttpClient
from tests.faults.processes import WorkerProcess, eventually
from tests.faults.routes import ASYNC_ROUTES, build_all
from tests.receiver import Receiver

pytestmark = [pytest.mark.fault, pytest.mark.slow]  # arq frees a dead worker's jobs after job timeout + 10 s
Db = Pool
CALLBACKS = 100
WYRE = next(r for r in ASYNC_ROUTES if r.provider == "wyre")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def _count(db: Db, sql: str) -> int:
    value = await db.fetchval(sql)
    assert isinstance(value, int)
    return value


@pytest.mark.timeout(90)
async def test_worker_killed_mid_job_completes_everything_once_with_the_same_webhook_ids(
    private_redis: EmbeddedRedis,
    settings: Settings,
    db: Db,
    aiohttp_client: AiohttpClient,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    configured = WYRE.configure(dataclasses.replace(settings, redis_url=private_redis.url), None)
    async with db.acquire() as conn:
        await subscribers.add(conn, "downstream", receiver.endpoint("downstream"))
    receiver.behave("downstream", delay_s=0.02)  # deliveries are in flight when the worker dies
    base = secrets.randbelow(10**8) * 1000
    callbacks = await build_all(WYRE, [str(base + i) for i in range(CALLBACKS)])
    client = await aiohttp_client(create_app(configured, metrics=Metrics()))
    for callback in callbacks:
        assert (await client.post(callback.path, data=callback.body, headers=callback.headers)).status == 200

    # A short job timeout: arq frees a dead worker's in-progress jobs after it + 10 s.
    worker = WorkerProcess(private_redis.url, settings.database_url, tmp_path / "worker.log",
                           env={"CALLGATE_JOB_TIMEOUT_SECONDS": "1", "CALLGATE_WORKER_MAX_JOBS": "20"})  # fmt: skip
    kills: list[tuple[int, int, int]] = []  # (jobs in progress, events stored, deliveries) at each kill
    redis = Redis.from_url(private_redis.url)
    try:
        # First kill among the store_event jobs, the second among the deliveries; then let it finish.
        for ready in (lambda: _stored(db, 1), lambda: _delivered(receiver, 10)):
            worker.start()
            assert await eventually(ready, 30, every_s=0.01)
            worker.kill()
            in_progress = len(await redis.keys("arq:in-progress:*"))
            kills.append((in_progress, await _count(db, "SELECT count(*) FROM events"), len(receiver.received)))
        worker.start()
        finished = await eventually(lambda: _all_done(db, redis, configured), 40, every_s=0.2)
        assert finished, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        worker.stop()
        await redis.aclose()
    assert kills[0][0] > 0 and kills[0][1] < CALLBACKS  # killed mid-job while storing, not between jobs
    assert kills[1][0] > 0 and 0 < kills[1][2] < CALLBACKS  # and again while delivering

    events = await db.fetch("SELECT idempotency_key FROM events WHERE provider = 'wyre'")
    assert Counter(r["idempotency_key"] for r in events) == Counter(c.key for c in callbacks)
    notifications = await db.fetch("SELECT id, status FROM notifications")
    assert len(notifications) == CALLBACKS and {r["status"] for r in notifications} == {"delivered"}
    sent_ids = Counter(r.webhook_id for r in receiver.at("downstream"))
    # Every delivery carried the id of its row; none was invented after the crash.
    assert set(sent_ids) == {r["id"] for r in notifications}
    redelivered = sum(n - 1 for n in sent_ids.values())
    print(
        f"\nworker killed twice, (in progress, stored, sent) = {kills}: "
        f"{CALLBACKS} events, {len(sent_ids)} webhook-ids, {redelivered} repeated deliveries (same id), "
        "lost 0, duplicated 0"
    )


async def _stored(db: Db, at_least: int) -> bool:
    return await _count(db, "SELECT count(*) FROM events") >= at_least


async def _delivered(receiver: Receiver, at_least: int) -> bool:
    return len(receiver.received) >= at_least


async def _all_done(db: Db, redis: Redis, settings: Settings) -> bool:
    delivered = await _count(db, "SELECT count(*) FROM notifications WHERE status = 'delivered'")
    return delivered == CALLBACKS and await redis.zcard(settings.queue_name) == 0
