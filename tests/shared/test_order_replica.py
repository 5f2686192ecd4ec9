"""The order replica reloads only when it really missed something (real Redis, real gateways).

A steady stream of changes keeps Redis's counter ahead of every replica (announcements in
flight): that alone must not cost a full reload, which with tens of thousands of orders is what
starved the ChainUp confirmation route. A lost announcement, a flushed Redis and a resync must
still be caught.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.keys import METRICS, ORDERS
from shared.config import Settings
from shared.db import Pool
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.order_replica import OrderReplica
from shared.orders import confirm, field_name, parse_order, register, resync
from shared.policy.model import OrderView
from tests.conftest import sample_value
from tests.shared.test_policy_store import until

Gateway = TestClient[web.Request, web.Application]
DESTINATION = "0xAbC0000000000000000000000000000000000001"


def order(ref: str) -> dict[str, object]:
    return {"provider": "chainup_waas", "order_ref": ref, "chain": "eth", "asset": "usdt",
            "destination": DESTINATION, "amount": "1.5", "expires_in": 600}  # fmt: skip


@pytest.fixture
def own_settings(settings: Settings) -> Settings:
    # Channels are shared by every Redis database: other tests' announcements must not reach us.
    return dataclasses.replace(settings, key_prefix=f"test-{secrets.token_hex(4)}")


@pytest.fixture
def keys(own_settings: Settings) -> RedisKeys:
    return RedisKeys(own_settings.key_prefix)


RELOADS = "callgate_orders_replica_reloads_total"


def reloads(gateway: Gateway, cause: str) -> float:
    return sample_value(gateway.app[METRICS], RELOADS, {"cause": cause})


def all_confirmed(replica: OrderView, refs: list[str]) -> Callable[[], bool]:
    return lambda: all(getattr(replica.lookup("chainup_waas", ref), "confirmed", False) for ref in refs)


@pytest.fixture
async def stream(db: Pool, redis: Redis, keys: RedisKeys) -> AsyncIterator[Callable[[], Awaitable[list[str]]]]:
    """A steady stream of registrations and confirmations (several at once, as several gateways
    would make them), from when the test starts it until the fixture stops it."""
    stop = asyncio.Event()
    done: list[str] = []

    async def producer(n: int) -> None:
        i = 0
        while not stop.is_set():
            ref = f"o-{n}-{i}"
            await register(db, redis, keys, parse_order(order(ref)))
            assert await confirm(redis, keys, "chainup_waas", ref)
            done.append(ref)
            i += 1

    tasks = [asyncio.create_task(producer(n)) for n in range(4)]

    async def finish() -> list[str]:
        stop.set()
        await asyncio.gather(*tasks)
        return done

    yield finish
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_steady_stream_costs_no_full_reload(
    gateway: Callable[[Settings], Awaitable[Gateway]],
    own_settings: Settings,
    stream: Callable[[], Awaitable[list[str]]],
) -> None:
    await asyncio.sleep(0.2)  # the stream is running before the gateways start
    gateways = [await gateway(own_settings), await gateway(own_settings)]
    await asyncio.sleep(1.6)  # three polls (0.5 s) each, every one finding the counter ahead
    done = await stream()
    assert len(done) > 50
    for g in gateways:
        await until(all_confirmed(g.app[ORDERS], done), within_s=1.0)
        # The load at start, subscribed first: nothing announced meanwhile is missed, so no gap.
        assert (reloads(g, "start"), reloads(g, "gap"), reloads(g, "poll")) == (1.0, 0.0, 0.0)


async def test_a_lost_announcement_is_recovered_by_the_poll(
    gateway: Callable[[Settings], Awaitable[Gateway]], own_settings: Settings, redis: Redis, keys: RedisKeys
) -> None:
    g = await gateway(own_settings)
    # What a lost announcement leaves behind: the hash and the counter changed, nobody was told.
    raw = '{"provider": "chainup_waas", "order_ref": "silent", "chain": "ETH", "asset": "USDT", ' \
          '"destination": "0xab", "amount": "1", "expires_at": null}'  # fmt: skip
    await redis.hset(keys.orders, field_name("chainup_waas", "silent"), raw)  # type: ignore[misc]
    await redis.incr(keys.orders_seq)
    await until(lambda: g.app[ORDERS].lookup("chainup_waas", "silent") is not None, within_s=1.5)
    assert reloads(g, "poll") == 1.0


async def test_a_flushed_redis_is_recovered(
    gateway: Callable[[Settings], Awaitable[Gateway]], own_settings: Settings, db: Pool, redis: Redis, keys: RedisKeys
) -> None:
    g = await gateway(own_settings)
    replica = g.app[ORDERS]
    for ref in ("a", "b"):
        await register(db, redis, keys, parse_order(order(ref)))
    await until(lambda: replica.lookup("chainup_waas", "b") is not None, within_s=1.0)
    await redis.flushdb()  # Redis lost its data: its counter is now behind ours
    await until(lambda: replica.lookup("chainup_waas", "a") is None, within_s=1.5)
    await register(db, redis, keys, parse_order(order("c")))  # the counter starts again from 1
    await until(lambda: replica.lookup("chainup_waas", "c") is not None, within_s=1.5)
    assert await resync(db, redis, keys) == 3  # counter jumped to the clock, announced to nobody
    await until(lambda: replica.lookup("chainup_waas", "a") is not None, within_s=1.5)
    assert not await confirm(redis, keys, "chainup_waas", "unknown")


async def test_announcements_during_a_reload_are_replayed_on_top_of_it(
    db: Pool, redis: Redis, keys: RedisKeys, stream: Callable[[], Awaitable[list[str]]]
) -> None:
    metrics = Metrics()
    replica = OrderReplica(redis, keys, poll_interval_s=30.0, metrics=metrics)
    await replica.start()
    try:
        for _ in range(20):  # each snapshot is read while announcements keep coming
            await replica.reload("poll")
        done = await stream()
        await until(all_confirmed(replica, done), within_s=1.0)
        # Start and ours: no gap found among the held announcements.
        counted = {cause: sample_value(metrics, RELOADS, {"cause": cause}) for cause in ("start", "poll", "gap")}
        assert counted == {"start": 1.0, "poll": 20.0, "gap": 0.0}
    finally:
        await replica.stop()


async def test_a_replica_that_missed_a_confirmation_cannot_consume_the_order_again(
    db: Pool, redis: Redis, keys: RedisKeys
) -> None:
    replica = OrderReplica(redis, keys, poll_interval_s=30.0)
    await replica.start()
    try:
        await register(db, redis, keys, parse_order(order("once")))
        await until(lambda: replica.lookup("chainup_waas", "once") is not None, within_s=1.0)
        # Another gateway's confirmation whose announcement never arrived here.
        await redis.hset(keys.orders_confirmed, field_name("chainup_waas", "once"), "1")  # type: ignore[misc]
        stale = replica.lookup("chainup_waas", "once")
        assert stale is not None and not stale.confirmed
        assert not await replica.confirm("chainup_waas", "once")  # Redis decides
    finally:
        await replica.stop()
