"""The gateway's in-memory UCW wallet registry against real Redis and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from callgate.embedded import free_port
from shared.db import Pool
from shared.keys import RedisKeys
from shared.providers.cobo_ucw_replica import WalletReplica
from shared.providers.cobo_ucw_store import add_wallet, sync_wallets, wallets_version
from tests.shared.test_policy_store import until

WALLET = "9b2f7a4e-3c1d-4e5f-8a6b-7c8d9e0f1a2b"
OTHER = "0d7c9e2a-5b4f-4a1e-9c3d-2e1f0a9b8c7d"
KEYS = RedisKeys("callgate-test")
Db = Pool


@pytest.fixture
async def replica(redis: Redis) -> AsyncIterator[WalletReplica]:
    # A slow whole-reload period, so that only announcements and the version poll can explain a change.
    wallets = WalletReplica(redis, KEYS, poll_interval_s=0.1, full_reload_s=3600)
    await wallets.start()
    yield wallets
    await wallets.stop()


async def _add(db: Db, redis: Redis, wallet: str, vault: str) -> None:
    async with db.acquire() as conn:
        await add_wallet(conn, redis, KEYS, wallet, vault)


async def test_registrations_and_repointing_are_followed(replica: WalletReplica, db: Db, redis: Redis) -> None:
    assert replica.get(WALLET) is None and len(replica) == 0
    await _add(db, redis, WALLET, "vault-1")
    assert await until(lambda: replica.get(WALLET) == "vault-1") < 1.0
    await _add(db, redis, WALLET, "vault-2")
    await until(lambda: replica.get(WALLET) == "vault-2")
    assert await wallets_version(redis, KEYS) == 2


async def test_a_lost_announcement_is_caught_by_the_version_poll(replica: WalletReplica, redis: Redis) -> None:
    # Written the way add_wallet writes, but never announced.
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(KEYS.namespace("ucw:wallets"), WALLET, "vault-1")
        pipe.incr(KEYS.namespace("ucw:wallets:version"))
        await pipe.execute()
    assert await until(lambda: replica.get(WALLET) == "vault-1") < 1.0


async def test_a_registry_redis_lost_is_forgotten_then_rebuilt(replica: WalletReplica, db: Db, redis: Redis) -> None:
    await _add(db, redis, WALLET, "vault-1")
    await until(lambda: replica.get(WALLET) == "vault-1")
    await redis.flushdb()
    await until(lambda: replica.get(WALLET) is None)
    async with db.acquire() as conn:
        assert await sync_wallets(conn, redis, KEYS) >= 1
    await until(lambda: replica.get(WALLET) == "vault-1")


async def test_find_asks_redis_about_a_wallet_it_does_not_know(db: Db, redis: Redis) -> None:
    # Never started: nothing in memory, so only Redis can answer.
    cold = WalletReplica(redis, KEYS)
    await _add(db, redis, OTHER, "vault-9")
    assert cold.get(OTHER) is None
    assert await cold.find(OTHER) == "vault-9"
    assert await cold.find(WALLET) is None


async def test_find_raises_when_redis_is_unreachable_for_an_unknown_wallet() -> None:
    port = free_port()  # nothing answers there
    dead = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.5)
    try:
        with pytest.raises(RedisError):
            await WalletReplica(dead, KEYS).find(WALLET)
    finally:
        await cast(Awaitable[None], dead.aclose())
