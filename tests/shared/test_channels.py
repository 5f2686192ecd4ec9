"""Background loops stop when asked, even when a cancellation never reaches them as an exception,
and the order replica's poll is stopped between batches rather than cancelled mid-query."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time

import pytest
from redis.asyncio import Redis

from shared.channels import STOP_WAIT_S, pause, stop_tasks
from shared.db import Pool
from shared.keys import RedisKeys
from shared.order_replica import PERSIST_BATCH, OrderReplica
from shared.orders import field_name


async def test_a_loop_whose_cancellation_was_swallowed_still_ends() -> None:
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while await pause(asyncio.Event(), 0.01):
            rounds += 1
            # What asyncpg cancelling a query, or Python 3.11's wait_for, may do with a cancellation.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await stop_tasks([task])
    assert task.done() and time.monotonic() - started < 0.5
    assert rounds > 0


async def test_a_plain_loop_whose_cancellation_was_swallowed_is_cancelled_again() -> None:
    swallowed: list[bool] = []

    async def loop() -> None:
        while True:  # a loop that does not check for a stop (the other replicas' polls)
            if not swallowed:  # the race that loses a cancellation happens at one await, once
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    swallowed.append(True)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await stop_tasks([task])
    assert swallowed and task.cancelled() and time.monotonic() - started < 1.0


async def test_a_stopping_event_lets_the_round_finish_instead_of_cancelling_it() -> None:
    stopping, finished = asyncio.Event(), []

    async def loop() -> None:
        while await pause(stopping, 0.01):
            await asyncio.sleep(0.2)  # a round in progress when the stop comes
            finished.append(True)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    await stop_tasks([task], stopping=stopping)
    assert task.done() and not task.cancelled() and finished == [True]


async def test_the_order_replica_stops_promptly_in_a_long_persisting_round(
    db: Pool, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    keys = RedisKeys(f"test-{secrets.token_hex(4)}")
    backlog = 20 * PERSIST_BATCH  # more confirmations waiting for Postgres than a stop may wait for
    async with db.acquire() as conn:
        await conn.execute(
            "INSERT INTO expected_orders (provider, order_ref, chain, asset, destination, amount)"
            " SELECT 'chainup_waas', 'o-' || i, 'ETH', 'USDT', '0xab', 1 FROM generate_series(1, $1) AS i",
            backlog,
        )
    async with redis.pipeline(transaction=False) as pipe:
        for i in range(1, backlog + 1):
            field = field_name("chainup_waas", f"o-{i}")
            pipe.hset(keys.orders_confirmed, field, repr(time.time()))
            pipe.sadd(keys.orders_unpersisted, field)
        await pipe.execute()
    replica = OrderReplica(redis, keys, pool=db, poll_interval_s=0.01)
    await replica.start()
    await asyncio.sleep(0.2)  # the poll is writing the backlog
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="shared.channels"):
        await replica.stop()
    assert time.monotonic() - started < STOP_WAIT_S
    assert "still closing" not in caplog.text
    left = await redis.scard(keys.orders_unpersisted)  # type: ignore[misc]
    assert 0 < left < backlog  # stopped between batches; the rest is written by the next poll
