"""Risk checks after storage: velocity, deny lists, large amounts, KYT levels, repeated REJECTs."""

from __future__ import annotations

import dataclasses
import secrets
import time
from decimal import Decimal

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from callgate.demo import wyre_transaction
from shared.config import Settings
from shared.db import Pool
from shared.jobs import EventEnvelope
from shared.keys import RedisKeys
from shared.risk.checks import RiskConfig, VelocityLimit
from shared.risk.facts import facts
from shared.risk.freezes import freezes_channel, frozen_wallets, unfreeze
from shared.risk.replica import FreezeReplica
from tests.conftest import WYRE_TOKEN, RunWorker, sample_value
from tests.workers.notify_support import notify_env, until
from workers.risk import CONFIG, assess

URL = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
Client = TestClient[web.Request, web.Application]
WYRE_WALLET = "wallet:WA_DEMO0000000"  # the `dest` of the demo Wyre transactions


def _ucw(wallet: str, *, risk: int | None = None, action: str | None = None, amount: str = "1") -> EventEnvelope:
    payload: dict[str, object] = {"wallet_uuid": wallet, "amount": amount, "symbol": "USDT"}
    if risk is not None:
        payload["riskLevelTo"] = risk
    return EventEnvelope(
        provider="uuwallet",
        kind="deposit",
        idempotency_key=secrets.token_hex(8),
        received_at=time.time(),
        raw_body=orjson.dumps(payload),
        request_id="r",
        payload=payload,
        decision=None if action is None else {"action": action},
    )


async def test_a_denied_counterparty_flags_the_event_and_freezes_the_wallet(
    gateway: object, settings: Settings, run_worker: RunWorker, db: Pool, redis: Redis
) -> None:
    keys = RedisKeys(settings.key_prefix)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(freezes_channel(keys))
    client: Client = await gateway(settings)  # type: ignore[operator]
    assert (await client.post(URL, data=wyre_transaction("CONFIRMED", "TR_RISKY0001"))).status == 200
    config = RiskConfig(deny_counterparties=frozenset({"bitcoin:EXTERNAL"}), large_amounts={"BTC": Decimal("0.01")})
    metrics = await run_worker(settings, ctx={CONFIG: config})

    rows = await db.fetch("SELECT check_name, severity, wallet FROM risk_findings ORDER BY check_name")
    assert [(r["check_name"], r["severity"], r["wallet"]) for r in rows] == [
        ("deny_list", "freeze", WYRE_WALLET),
        ("large_amount", "alert", WYRE_WALLET),
    ]
    assert await db.fetchval("SELECT status FROM events") == "flagged"
    frozen = await frozen_wallets(redis, keys)
    assert frozen[WYRE_WALLET].reason == "deny_list"
    assert frozen[WYRE_WALLET].event == "wyre:TR_RISKY0001:CONFIRMED"
    assert await _next_message(pubsub) == WYRE_WALLET.encode()
    assert sample_value(metrics, "callgate_risk_freezes_total", {"check": "deny_list"}) == 1
    assert await unfreeze(redis, keys, WYRE_WALLET)
    assert await frozen_wallets(redis, keys) == {}
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_velocity_counts_each_event_once_over_a_sliding_window(
    settings: Settings, db: Pool, redis: Redis
) -> None:
    config = RiskConfig(velocity=(VelocityLimit(60, 2, max_amount=Decimal("10")),))
    events = [_ucw("W-velocity", amount="4") for _ in range(3)]
    async with notify_env(settings) as env:
        assert await assess(env.deps, config, facts(events[0])) == []
        assert await assess(env.deps, config, facts(events[0])) == []  # the same event again: still one
        assert await assess(env.deps, config, facts(events[1])) == []
        found = await assess(env.deps, config, facts(events[2]))
        later = dataclasses.replace(_ucw("W-velocity", amount="4"), received_at=time.time() + 120)
        assert await assess(env.deps, config, facts(later)) == []  # the window slid past the others
    assert [f.check for f in found] == ["velocity_count", "velocity_amount"]
    assert "3 events in 60 s" in found[0].detail and "12 in 60 s" in found[1].detail
    assert await db.fetchval("SELECT count(*) FROM risk_findings") == 2


async def _next_message(pubsub: PubSub) -> bytes | None:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message is not None:
            return bytes(message["data"])
    return None


async def test_kyt_levels_alert_or_freeze(settings: Settings, db: Pool, redis: Redis) -> None:
    config = RiskConfig(kyt_alert_level=50, kyt_freeze_level=90)
    async with notify_env(settings) as env:
        assert await assess(env.deps, config, facts(_ucw("W-low", risk=10))) == []
        (alert,) = await assess(env.deps, config, facts(_ucw("W-mid", risk=60)))
        (stop,) = await assess(env.deps, config, facts(_ucw("W-high", risk=95)))
    assert (alert.check, alert.severity) == ("kyt_level", "alert")
    assert (stop.check, stop.severity) == ("kyt_level", "freeze")
    assert set(await frozen_wallets(redis, RedisKeys(settings.key_prefix))) == {"W-high"}


async def test_repeated_rejects_for_one_wallet_freeze_it(settings: Settings, db: Pool, redis: Redis) -> None:
    config = RiskConfig(rejects_to_freeze=3)
    async with notify_env(settings) as env:
        results = []
        for action in ("REJECT", "APPROVE", "REJECT", "REJECT"):
            results.append(await assess(env.deps, config, facts(_ucw("W-rejected", action=action))))
    assert [[f.check for f in r] for r in results] == [[], [], [], ["repeated_rejects"]]
    frozen = await frozen_wallets(redis, RedisKeys(settings.key_prefix))
    assert frozen["W-rejected"].reason == "repeated_rejects"


async def test_a_freeze_reaches_a_gateway_replica_within_a_second(settings: Settings, redis: Redis) -> None:
    keys = RedisKeys(settings.key_prefix)
    replica = FreezeReplica(redis, keys, poll_interval_s=30.0)  # the announcement, not the poll
    await replica.start()
    try:
        assert replica.get("W-replica") is None
        async with notify_env(settings) as env:
            await assess(env.deps, RiskConfig(kyt_freeze_level=90), facts(_ucw("W-replica", risk=99)))
        await until(lambda: _now(replica.get("W-replica") is not None), timeout_s=1.0)
        freeze = replica.get("W-replica")
        assert freeze is not None and freeze.reason == "kyt_level" and "99" in freeze.detail
        await unfreeze(redis, keys, "W-replica")
        await until(lambda: _now(replica.get("W-replica") is None), timeout_s=1.0)
    finally:
        await replica.stop()


async def _now(value: bool) -> bool:
    return value
