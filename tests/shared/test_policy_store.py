"""Policy store and holders against real Postgres and Redis: publish, announce, poll, refuse."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import pytest
from redis.asyncio import Redis

from shared.db import Pool
from shared.errors import PolicyError
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.holder import PolicyHolder
from shared.policy.model import Action, DecisionRequest, Operation, Transfer
from shared.policy.snapshot import decide
from shared.policy.store import activate, compile_stored, list_versions, load_active, publish

KEYGEN = DecisionRequest("cobo_tss", Operation.KEYGEN, "k", node_ids=("a", "b"), threshold=2)


def policy(min_threshold: int) -> str:
    return f"rules:\n  - id: kg\n    kind: tss\n    min_threshold: {min_threshold}\n"


@pytest.fixture
def keys() -> RedisKeys:
    # Pub/sub channels are shared by every Redis database: a private prefix keeps test sessions apart.
    return RedisKeys(f"test-{secrets.token_hex(4)}")


HolderFactory = Callable[..., Awaitable[PolicyHolder]]


@pytest.fixture
async def holders(db: Pool, redis: Redis, keys: RedisKeys) -> AsyncIterator[HolderFactory]:
    started: list[PolicyHolder] = []

    async def start(*, poll_interval_s: float = 60.0, metrics: Metrics | None = None) -> PolicyHolder:
        holder = PolicyHolder(db, redis, keys, poll_interval_s=poll_interval_s, metrics=metrics)
        await holder.start()
        started.append(holder)
        return holder

    yield start
    for holder in started:
        await holder.stop()


async def until(condition: Callable[[], bool], *, within_s: float = 2.0) -> float:
    """Wait for `condition`; returns the seconds it took, fails the test past `within_s`."""
    started = asyncio.get_running_loop().time()
    while not condition():
        elapsed = asyncio.get_running_loop().time() - started
        assert elapsed < within_s, "condition not met in time"
        await asyncio.sleep(0.01)
    return asyncio.get_running_loop().time() - started


async def test_nothing_published_means_fail_closed(holders: HolderFactory) -> None:
    holder = await holders()
    assert holder.current is None
    assert decide(holder.current, KEYGEN).reasons[0].code == "no_policy"


async def test_publish_reaches_every_holder(db: Pool, redis: Redis, keys: RedisKeys, holders: HolderFactory) -> None:
    metrics = Metrics()
    first, second = await holders(metrics=metrics), await holders()  # two gateway processes
    published = await publish(db, redis, keys, policy(2), published_by="test")
    assert published.created and published.announced and published.policy.version == 1
    await until(lambda: all(h.current is not None and h.current.version == 1 for h in (first, second)))
    assert decide(first.current, KEYGEN).action is Action.APPROVE
    await publish(db, redis, keys, policy(3), published_by="test")
    await until(lambda: all(h.current is not None and h.current.version == 2 for h in (first, second)))
    assert decide(second.current, KEYGEN).action is Action.REJECT
    assert metrics.registry.get_sample_value("callgate_policy_version") == 2
    age = metrics.registry.get_sample_value("callgate_policy_age_seconds")
    assert age is not None and 0 <= age < 60


async def test_a_missed_announcement_is_caught_by_the_poll(
    db: Pool, redis: Redis, keys: RedisKeys, holders: HolderFactory
) -> None:
    holder = await holders(poll_interval_s=0.2)
    elsewhere = RedisKeys(keys.prefix + "-elsewhere")  # announced on a channel nobody listens to
    await publish(db, redis, elsewhere, policy(2), published_by="test")
    await until(lambda: holder.current is not None and holder.current.version == 1)


async def test_a_holder_started_late_loads_the_active_version(
    db: Pool, redis: Redis, keys: RedisKeys, holders: HolderFactory
) -> None:
    await publish(db, redis, keys, policy(2), published_by="test")
    holder = await holders()
    assert holder.current is not None and holder.current.version == 1


async def test_a_bad_document_is_refused_with_its_path(db: Pool, redis: Redis, keys: RedisKeys) -> None:
    with pytest.raises(PolicyError) as refused:
        await publish(db, redis, keys, policy(0), published_by="test")
    assert refused.value.path == "rules[0].min_threshold"
    failing_example = policy(2) + "examples:\n  - request: {provider: x, operation: keygen}\n    expect: APPROVE\n"
    with pytest.raises(PolicyError) as failed:
        await publish(db, redis, keys, failing_example, published_by="test")
    assert failed.value.path == "examples[0]"
    assert await list_versions(db) == []


async def test_republishing_the_same_content_changes_nothing(db: Pool, redis: Redis, keys: RedisKeys) -> None:
    await publish(db, redis, keys, policy(2), published_by="a")
    again = await publish(db, redis, keys, policy(2) + "# only a comment differs\n", published_by="b")
    assert not again.created and again.policy.version == 1


async def test_shadow_versions_do_not_replace_the_active_one(db: Pool, redis: Redis, keys: RedisKeys) -> None:
    await publish(db, redis, keys, policy(2), published_by="a")
    shadow = await publish(db, redis, keys, policy(3), published_by="a", shadow=True)
    assert shadow.policy.state == "shadow"
    active = await load_active(db)
    assert active is not None and active.version == 1
    assert [p.state for p in await list_versions(db)] == ["shadow", "active"]


async def test_activate_promotes_a_shadow_and_rolls_back(
    db: Pool, redis: Redis, keys: RedisKeys, holders: HolderFactory
) -> None:
    holder = await holders()
    await publish(db, redis, keys, policy(2), published_by="a")
    await publish(db, redis, keys, policy(3), published_by="a", shadow=True)
    promoted = await activate(db, redis, keys, 2, published_by="b")
    assert promoted.created and promoted.policy.version == 3 and promoted.policy.state == "active"
    await until(lambda: holder.current is not None and holder.current.version == 3)
    assert decide(holder.current, KEYGEN).action is Action.REJECT  # min_threshold 3 now
    rolled_back = await activate(db, redis, keys, 1, published_by="b")
    assert rolled_back.policy.version == 4
    await until(lambda: holder.current is not None and holder.current.version == 4)
    assert decide(holder.current, KEYGEN).action is Action.APPROVE
    with pytest.raises(PolicyError) as missing:
        await activate(db, redis, keys, 99, published_by="b")
    assert missing.value.path == "version"


async def test_the_holder_compiles_named_lists_as_published(
    db: Pool, redis: Redis, keys: RedisKeys, holders: HolderFactory
) -> None:
    text = (
        "lists:\n  deny: ['0xAB00000000000000000000000000000000000001', 'TXyz']\n  empty: []\n"
        "rules:\n  - {id: d, kind: destinations, deny_lists: [deny, empty]}\n"
        "  - {id: l, kind: amount_limit, max_amount: '5'}\n"
    )
    await publish(db, redis, keys, text, published_by="test")
    holder = await holders()
    snapshot = holder.current
    assert snapshot is not None
    stored = await load_active(db)
    assert stored is not None
    assert snapshot.transfer_rules == compile_stored(stored).transfer_rules  # the lists-apart path agrees

    def pay(to: str) -> Action:
        transfer = Transfer("TRON", "USDT", Decimal("1"), to)
        return decide(snapshot, DecisionRequest("uuwallet", Operation.WITHDRAW, "w", transfers=(transfer,))).action

    assert pay("0xab00000000000000000000000000000000000001") is Action.REJECT
    assert pay("TXyz") is Action.REJECT and pay("txyz") is Action.APPROVE
