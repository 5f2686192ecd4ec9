"""`breaker_states`: what the admin API, console and `callgate subscribers list` show, read from
the breaker the workers share in Redis (opened here through the workers' own `Breaker`)."""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from shared.keys import RedisKeys
from shared.notify.breaker import Breaker, breaker_states


async def test_closed_open_then_half_open_after_the_cooldown(redis: Redis) -> None:
    keys = RedisKeys(f"test-{secrets.token_hex(4)}")
    breaker = Breaker(redis, keys, threshold=2, cooldown_s=30, max_inflight=4, slot_ttl_s=60)
    now = 1_000_000.0
    assert await breaker_states(redis, keys, [1, 2], now) == {1: "closed", 2: "closed"}
    for token in ("a", "b"):  # two failures in a row open subscriber 1's breaker
        await breaker.acquire(1, token, now)
        await breaker.release(1, token, ok=False, now=now)
    assert await breaker_states(redis, keys, [1, 2], now + 1) == {1: "open", 2: "closed"}
    assert await breaker_states(redis, keys, [1], now + 31) == {1: "half_open"}
    assert await breaker_states(redis, keys, [], now) == {}
