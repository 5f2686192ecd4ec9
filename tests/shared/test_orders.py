"""Expected-order registry against real Postgres and Redis: register, replicate, confirm once."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from shared.db import Pool
from shared.errors import InvalidInput
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.order_replica import OrderReplica
from shared.orders import (
    OrderConflict,
    field_name,
    list_orders,
    parse_order,
    persist_confirmations,
    prune_expired,
    register,
    resync,
)
from shared.policy.document import parse_document
from shared.policy.model import Action, DecisionRequest, Operation, Transfer
from shared.policy.snapshot import compile_snapshot, decide

DESTINATION = "0xAbC0000000000000000000000000000000000001"


def order_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {"provider": "uuwallet", "order_ref": "cb-1", "chain": "eth", "asset": "usdt",
                               "destination": DESTINATION, "amount": "12.50", "expires_in": 600,
                               "extras": {"tenantUserId": "u-7"}}  # fmt: skip
    data.update(changes)
    return data


@pytest.fixture
def keys() -> RedisKeys:
    return RedisKeys(f"test-{secrets.token_hex(4)}")  # channels are shared across Redis databases


ReplicaFactory = Callable[..., Awaitable[OrderReplica]]


@pytest.fixture
async def replicas(db: Pool, redis: Redis, keys: RedisKeys) -> AsyncIterator[ReplicaFactory]:
    started: list[OrderReplica] = []

    async def start(*, poll_interval_s: float = 30.0, metrics: Metrics | None = None) -> OrderReplica:
        replica = OrderReplica(redis, keys, pool=db, poll_interval_s=poll_interval_s, metrics=metrics)
        await replica.start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        await replica.stop()


async def until(condition: Callable[[], bool], *, within_s: float = 1.0) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        assert loop.time() - started < within_s, "condition not met in time"
        await asyncio.sleep(0.005)
    return loop.time() - started


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 12.5}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"order_ref": ""}, "order_ref"),
        ({"order_ref": "a\nb"}, "order_ref"),
        ({"provider": "uu wallet"}, "provider"),
        ({"expires_at": 10, "expires_in": 10}, "expires_in"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"extras": {"tenantUserId": ["x"]}}, "extras.tenantUserId"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_parse_order_names_the_bad_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as bad:
        parse_order(order_data(**changes))
    assert bad.value.field == field


def test_parse_order_normalises() -> None:
    order = parse_order(order_data(), now=1000.0)
    assert (order.chain, order.asset, order.destination) == ("ETH", "USDT", DESTINATION.lower())
    assert order.amount == Decimal("12.50") and order.expires_at == 1600.0
    assert order.extras == (("tenantUserId", "u-7"),)


async def test_a_registered_order_reaches_every_replica_within_a_second(
    db: Pool, redis: Redis, keys: RedisKeys, replicas: ReplicaFactory
) -> None:
    metrics = Metrics()
    first, second = await replicas(metrics=metrics), await replicas()
    stored, created = await register(db, redis, keys, parse_order(order_data()))
    assert created and not stored.order.confirmed
    waited = await until(lambda: all(r.lookup("uuwallet", "cb-1") is not None for r in (first, second)))
    assert waited < 1.0
    seen = first.lookup("uuwallet", "cb-1")
    assert seen is not None and seen.amount == Decimal("12.50") and dict(seen.extras)["tenantUserId"] == "u-7"
    lag = metrics.registry.get_sample_value("callgate_orders_replica_lag_seconds_count")
    assert lag == 1.0


async def test_a_missed_announcement_is_caught_by_the_poll(
    db: Pool, redis: Redis, keys: RedisKeys, replicas: ReplicaFactory
) -> None:
    replica = await replicas(poll_interval_s=0.1)
    # What a lost announcement leaves behind: the hash and the counter changed, nobody was told.
    order = '{"provider": "uuwallet", "order_ref": "cb-9", "chain": "ETH", "asset": "USDT", ' \
            '"destination": "0xab", "amount": "1", "expires_at": null}'  # fmt: skip
    await redis.hset(keys.orders, field_name("uuwallet", "cb-9"), order)  # type: ignore[misc]
    await redis.incr(keys.orders_seq)
    await until(lambda: replica.lookup("uuwallet", "cb-9") is not None)


async def test_an_announcement_after_a_gap_reloads_everything(
    db: Pool, redis: Redis, keys: RedisKeys, replicas: ReplicaFactory
) -> None:
    replica = await replicas()
    await redis.hset(keys.orders, field_name("uuwallet", "silent"), '{"provider": "uuwallet", "order_ref": "silent", '
                     '"chain": "ETH", "asset": "USDT", "destination": "0xab", "amount": "1"}')  # type: ignore[misc]  # fmt: skip
    await redis.incr(keys.orders_seq)  # announced to nobody
    await register(db, redis, keys, parse_order(order_data()))  # announced as seq 2: a gap
    await until(lambda: replica.lookup("uuwallet", "silent") is not None)
    assert replica.lookup("uuwallet", "cb-1") is not None


async def test_registering_again(db: Pool, redis: Redis, keys: RedisKeys) -> None:
    await register(db, redis, keys, parse_order(order_data()))
    _, created = await register(db, redis, keys, parse_order(order_data(amount="12.5000")))
    assert not created
    with pytest.raises(OrderConflict):
        await register(db, redis, keys, parse_order(order_data(amount="13")))
    assert [o.order.order_ref for o in await list_orders(db)] == ["cb-1"]


async def test_confirmation_is_won_once_across_gateways_and_persisted(
    db: Pool, redis: Redis, keys: RedisKeys, replicas: ReplicaFactory
) -> None:
    first, second = await replicas(), await replicas()
    await register(db, redis, keys, parse_order(order_data()))
    await until(lambda: all(r.lookup("uuwallet", "cb-1") is not None for r in (first, second)))
    wins = await asyncio.gather(*(r.confirm("uuwallet", "cb-1") for r in (first, second, first, second)))
    assert sorted(wins) == [False, False, False, True]
    await until(lambda: all(getattr(r.lookup("uuwallet", "cb-1"), "confirmed", False) for r in (first, second)))
    assert not await first.confirm("uuwallet", "unknown")
    assert await persist_confirmations(db, redis, keys) == 1
    (stored,) = await list_orders(db, provider="uuwallet")
    assert stored.order.confirmed and stored.confirmed_at is not None


async def test_the_replica_answers_the_policy(
    db: Pool, redis: Redis, keys: RedisKeys, replicas: ReplicaFactory
) -> None:
    replica = await replicas()
    snapshot = compile_snapshot(
        parse_document({"rules": [{"id": "eo", "kind": "expected_order", "match": {"provider": "uuwallet"}}]}),
        version=1, published_at=0.0, sha256="",
    )  # fmt: skip
    transfer = Transfer("ETH", "USDT", Decimal("12.5"), DESTINATION)
    request = DecisionRequest("uuwallet", Operation.WITHDRAW, "r", transfers=(transfer,), order_ref="cb-1")
    assert decide(snapshot, request, orders=replica).reasons[0].code == "order_not_found"
    await register(db, redis, keys, parse_order(order_data()))
    await until(lambda: replica.lookup("uuwallet", "cb-1") is not None)
    assert decide(snapshot, request, orders=replica).action is Action.APPROVE
    await replica.confirm("uuwallet", "cb-1")
    assert decide(snapshot, request, orders=replica).reasons[0].code == "order_already_confirmed"


async def test_long_expired_orders_are_pruned_from_redis_and_replicas(
    db: Pool, redis: Redis, keys: RedisKeys, replicas: ReplicaFactory
) -> None:
    replica = await replicas()
    long_ago = time.time() - 3 * 86400
    await register(db, redis, keys, parse_order(order_data(order_ref="old", expires_in=None, expires_at=long_ago)))
    await register(db, redis, keys, parse_order(order_data(order_ref="fresh")))
    await until(
        lambda: replica.lookup("uuwallet", "old") is not None and replica.lookup("uuwallet", "fresh") is not None
    )
    assert await prune_expired(redis, keys, older_than_s=86400) == 1
    await until(lambda: replica.lookup("uuwallet", "old") is None)
    assert replica.lookup("uuwallet", "fresh") is not None
    assert await prune_expired(redis, keys, older_than_s=86400) == 0
    assert len(await list_orders(db)) == 2  # Postgres keeps the record


async def test_resync_rebuilds_redis_after_it_lost_everything(
    db: Pool, redis: Redis, keys: RedisKeys, replicas: ReplicaFactory
) -> None:
    replica = await replicas(poll_interval_s=0.05)
    await register(db, redis, keys, parse_order(order_data()))
    await register(db, redis, keys, parse_order(order_data(order_ref="cb-2")))
    await replica.confirm("uuwallet", "cb-2")
    assert await persist_confirmations(db, redis, keys) == 1
    await redis.flushdb()  # Redis lost its data
    await until(lambda: replica.lookup("uuwallet", "cb-1") is None)
    assert await resync(db, redis, keys) == 2
    await until(lambda: replica.lookup("uuwallet", "cb-1") is not None)
    restored = replica.lookup("uuwallet", "cb-2")
    assert restored is not None and restored.confirmed
    assert not await replica.confirm("uuwallet", "cb-2")  # still consumed, everywhere
