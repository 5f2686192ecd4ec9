"""The in-memory replica primitive (and the freeze replica built on it) against real Redis.

Redis failures are real ones: a key of the wrong type makes the load's HGETALL fail with Redis's
WRONGTYPE error, and a client pointed at a closed port cannot connect.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest
from redis.asyncio import Redis

from callgate.embedded import free_port
from shared.keys import RedisKeys
from shared.replica import Replica
from shared.risk.freezes import Freeze, freeze, freezes_key
from shared.risk.replica import FreezeReplica
from tests.shared.test_policy_store import until

State = dict[bytes, bytes]
Factory = Callable[..., Awaitable[Replica[State]]]


@pytest.fixture
def keys() -> RedisKeys:
    # Pub/sub channels are shared by every Redis database: a private prefix keeps test sessions apart.
    return RedisKeys(f"test-{secrets.token_hex(4)}")


@pytest.fixture
async def replicas(redis: Redis, keys: RedisKeys) -> AsyncIterator[Factory]:
    """Started replicas of the hash `<prefix>:state`, stopped after the test."""
    started: list[Replica[State]] = []

    async def make(
        *, poll_interval_s: float = 0.05, stale: Callable[[], Awaitable[bool]] | None = None, full_reload_s: float = 60
    ) -> Replica[State]:
        async def load() -> State:
            return cast(State, await redis.hgetall(_state(keys)))  # type: ignore[misc]

        replica: Replica[State] = Replica(
            redis,
            _channel(keys),
            load,
            {},
            name="test",
            poll_interval_s=poll_interval_s,
            stale=stale,
            full_reload_s=full_reload_s,
        )
        await replica.start()
        started.append(replica)
        return replica

    yield make
    for replica in started:
        await replica.stop()


def _state(keys: RedisKeys) -> str:
    return keys.namespace("state")


def _channel(keys: RedisKeys) -> str:
    return keys.namespace("state:changed")


async def test_an_announcement_reloads_at_once(replicas: Factory, redis: Redis, keys: RedisKeys) -> None:
    replica = await replicas(poll_interval_s=3600)  # only the announcement can explain a change
    await asyncio.sleep(0.2)  # the subscription is confirmed
    await redis.hset(_state(keys), "a", "1")  # type: ignore[misc]
    await redis.publish(_channel(keys), "a")
    await until(lambda: replica.current == {b"a": b"1"}, within_s=1.0)


async def test_a_lost_announcement_is_covered_by_the_poll(replicas: Factory, redis: Redis, keys: RedisKeys) -> None:
    replica = await replicas()
    assert replica.current == {}
    await redis.hset(_state(keys), "a", "1")  # type: ignore[misc]  # written, never announced
    await until(lambda: replica.current == {b"a": b"1"}, within_s=1.0)


async def test_a_load_failed_at_start_is_retried_by_the_poll(replicas: Factory, redis: Redis, keys: RedisKeys) -> None:
    await redis.set(_state(keys), "not a hash")
    replica = await replicas()  # start does not raise
    assert replica.current == {}
    await redis.delete(_state(keys))
    await redis.hset(_state(keys), "a", "1")  # type: ignore[misc]
    await until(lambda: replica.current == {b"a": b"1"}, within_s=1.0)


async def test_a_failed_poll_keeps_the_previous_state_and_says_so(
    replicas: Factory, redis: Redis, keys: RedisKeys, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.hset(_state(keys), "a", "1")  # type: ignore[misc]
    replica = await replicas()
    loaded = replica.current
    assert loaded == {b"a": b"1"}
    with caplog.at_level(logging.WARNING, logger="shared.replica"):
        await redis.delete(_state(keys))
        await redis.set(_state(keys), "not a hash")
        await until(lambda: "test replica reload failed (retried next round): ResponseError" in caplog.text)
        await asyncio.sleep(0.2)  # a few more failed rounds
    assert replica.current is loaded
    await redis.delete(_state(keys))
    await until(lambda: replica.current == {}, within_s=1.0)


async def test_a_stale_check_spares_reloads_until_a_full_one_is_due(
    replicas: Factory, redis: Redis, keys: RedisKeys
) -> None:
    moved = False

    async def stale() -> bool:
        return moved

    replica = await replicas(stale=stale, full_reload_s=1.0)
    started = asyncio.get_running_loop().time()
    await redis.hset(_state(keys), "a", "1")  # type: ignore[misc]  # never announced
    await asyncio.sleep(0.4)  # several polls, none told to reload
    assert replica.current == {}
    await until(lambda: replica.current == {b"a": b"1"}, within_s=1.5)  # the whole reload
    assert asyncio.get_running_loop().time() - started >= 0.9
    await redis.hset(_state(keys), "b", "2")  # type: ignore[misc]
    moved = True
    await until(lambda: b"b" in replica.current, within_s=0.5)  # well before the next whole reload


async def test_redis_unreachable_at_start_leaves_the_state_empty_and_stops_cleanly(keys: RedisKeys) -> None:
    port = free_port()
    dead = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    try:
        replica = FreezeReplica(dead, keys, poll_interval_s=0.05)
        await replica.start()
        await asyncio.sleep(0.2)  # failed polls, a lost subscription: none of them raise here
        assert replica.frozen == {} and replica.get("W-1") is None
        await asyncio.wait_for(replica.stop(), timeout=3.0)
    finally:
        await cast(Awaitable[None], dead.aclose())


async def test_the_freeze_replica_loads_at_start_and_keeps_its_freezes_through_failed_polls(
    redis: Redis, keys: RedisKeys
) -> None:
    await freeze(redis, keys, Freeze("W-1", "deny_list", "d", "wyre:1", 1.0))
    replica = FreezeReplica(redis, keys, poll_interval_s=0.05)
    await replica.start()
    try:
        assert replica.get("W-1") is not None  # loaded by start, before any poll
        frozen = replica.frozen
        await redis.set(freezes_key(keys), "not a hash")  # polls fail from now on
        await asyncio.sleep(0.2)
        assert replica.frozen is frozen and replica.get("W-1") == Freeze("W-1", "deny_list", "d", "wyre:1", 1.0)
    finally:
        await replica.stop()
