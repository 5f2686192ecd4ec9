"""Downstream notifications: outbox, Standard Webhooks signatures, schedule, 410, breaker, crash."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from standardwebhooks import Webhook

from callgate.demo import wyre_transaction
from shared.config import Settings
from shared.db import Pool as Db
from shared.jobs import delivery_job_id as job_id
from shared.notify import outbox, subscribers
from shared.notify.schedule import DeliveryPolicy
from tests.conftest import WYRE_TOKEN, RunWorker, sample_value
from tests.receiver import Received, Receiver, refused_url
from tests.workers.notify_support import FakeClock, notify_env, store, until, wyre_event
from workers.deliver import POLICY, deliver

Gateway = Callable[[Settings], Awaitable[TestClient[web.Request, web.Application]]]
URL = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"


@pytest.fixture
async def receiver(redis: Redis) -> AsyncIterator[Receiver]:
    """A live receiver; asks for `redis` so breaker state starts empty (subscriber ids restart)."""
    r = await Receiver().start()
    yield r
    await r.stop()


async def _add(db: Db, name: str, url: str, types: tuple[str, ...] = ()) -> str:
    async with db.acquire() as conn:
        _, secret = await subscribers.add(conn, name, url, event_types=types)
    return secret


async def _notifications(db: Db) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT n.*, s.name FROM notifications n JOIN subscribers s ON s.id = n.subscriber_id ORDER BY s.name, n.id"
    )


async def test_each_stored_event_is_one_signed_notification_per_matching_subscriber(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, db: Db, receiver: Receiver
) -> None:
    every = await _add(db, "every", receiver.endpoint("every"))
    wyre_only = await _add(db, "wyre", receiver.endpoint("wyre"), ("wyre.*",))
    await _add(db, "other", receiver.endpoint("other"), ("cobo_ucw.*", "wyre.transaction.pending"))
    await _add(db, "off", receiver.endpoint("off"))
    async with db.acquire() as conn:
        await subscribers.set_enabled(conn, "off", False, reason="test")
    client = await gateway(settings)
    body = wyre_transaction("CONFIRMED", "TR_NOTIFY00001")
    for _ in range(2):
        assert (await client.post(URL, data=body)).status == 200
    metrics = await run_worker(settings)

    assert sorted(r.path for r in receiver.received) == ["/every", "/wyre"]
    for name, secret in (("every", every), ("wyre", wyre_only)):
        (got,) = receiver.at(name)
        message = Webhook(secret).verify(got.body, got.headers)  # the official library, not ours
        assert message["type"] == "wyre.transaction.confirmed"
        data = message["data"]
        assert data["provider"] == "wyre" and data["kind"] == "transaction.confirmed"
        assert data["ids"]["id"] == "TR_NOTIFY00001"
        assert data["amounts"] == {"amount": "0.01653538"}  # a string, exactly as sent
        assert data["assets"] == {"currency": "BTC"}
        assert data["status"] == "CONFIRMED"
        event_id = await db.fetchval("SELECT id FROM events WHERE idempotency_key = 'TR_NOTIFY00001:CONFIRMED'")
        assert data["event_id"] == str(event_id)
        assert got.webhook_id.startswith("msg_") and "." not in got.webhook_id
    rows = await _notifications(db)
    assert [(r["name"], r["status"], r["attempts"]) for r in rows] == [
        ("every", "delivered", 1),
        ("wyre", "delivered", 1),
    ]
    assert {r["id"] for r in rows} == {got.webhook_id for got in receiver.received}
    assert sample_value(metrics, "callgate_notification_deliveries_total", {"outcome": "delivered"}) == 2


async def test_the_outbox_is_written_once_per_event_and_subscriber(db: Db) -> None:
    await _add(db, "a", "http://127.0.0.1:9/a")
    event = wyre_event("TR_ONCE")
    await store(db, event, event)
    await store(db, event)  # a re-run of store_event: the row exists, no second notification
    async with db.acquire() as conn:
        pending = await outbox.pending_for_events(conn, [("wyre", event.idempotency_key)])
    assert [len(rows) for rows in pending.values()] == [1]
    assert len(await _notifications(db)) == 1


async def test_during_rotation_both_secrets_sign_and_each_verifies(
    db: Db, settings: Settings, receiver: Receiver
) -> None:
    old = await _add(db, "rot", receiver.endpoint("rot"))
    async with db.acquire() as conn:
        new = await subscribers.rotate_secret(conn, "rot", overlap=dt.timedelta(hours=1))
    await store(db, wyre_event())
    async with notify_env(settings) as env:
        (nid,) = [r["id"] for r in await _notifications(db)]
        assert (await deliver(env.deps, env.runtime, nid, 1)).outcome == "delivered"
    (got,) = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "wyre.transaction.confirmed"


async def test_failures_follow_the_schedule_with_jitter_then_dead_letter(
    db: Db, settings: Settings, redis: Redis, receiver: Receiver
) -> None:
    receiver.behave("down", status=500)
    await _add(db, "down", receiver.endpoint("down"))
    await store(db, wyre_event())
    clock = FakeClock()
    policy = DeliveryPolicy()
    async with notify_env(settings, policy=policy, clock=clock) as env:
        (nid,) = [r["id"] for r in await _notifications(db)]
        for attempt, base in enumerate(policy.schedule_s, start=1):
            assert (await deliver(env.deps, env.runtime, nid, attempt)).outcome == "retry"
            row = await db.fetchrow("SELECT attempts, next_attempt_at, last_status FROM notifications")
            assert row is not None and row["attempts"] == attempt and row["last_status"] == 500
            delay = row["next_attempt_at"].timestamp() - clock.now
            assert base * 0.8 - 0.01 <= delay <= base * 1.2 + 0.01
            score = await redis.zscore(settings.queue_name, job_id(nid, attempt + 1))
            assert score is not None and abs(score / 1000 - row["next_attempt_at"].timestamp()) < 0.01
            # a re-run of the same attempt (arq delivers at least once) changes nothing
            assert (await deliver(env.deps, env.runtime, nid, attempt)).outcome == "stale"
            clock.now += delay
        assert (await deliver(env.deps, env.runtime, nid, policy.max_attempts)).outcome == "dead"
    assert len(receiver.at("down")) == policy.max_attempts
    assert await db.fetchval("SELECT status FROM notifications") == "dead"
    letters = await db.fetch("SELECT job, ref, args FROM dead_letters")
    assert [(r["job"], r["ref"], r["args"]) for r in letters] == [("deliver_notification", nid, [nid])]
    assert await db.fetchval("SELECT count(*) FROM delivery_attempts WHERE notification_id = $1", nid) == 8


@pytest.mark.parametrize("status", [429, 503])
async def test_throttled_answers_honour_retry_after(
    db: Db, settings: Settings, receiver: Receiver, status: int
) -> None:
    clock = FakeClock()
    when = email.utils.format_datetime(dt.datetime.fromtimestamp(clock.now + 7200, dt.UTC), usegmt=True)
    receiver.behave("busy", status=status, retry_after="600" if status == 429 else when)
    await _add(db, "busy", receiver.endpoint("busy"))
    await store(db, wyre_event())
    async with notify_env(settings, clock=clock) as env:
        (nid,) = [r["id"] for r in await _notifications(db)]
        assert (await deliver(env.deps, env.runtime, nid, 1)).outcome == "retry"
    delay = (await db.fetchval("SELECT next_attempt_at FROM notifications")).timestamp() - clock.now
    expected = 600 if status == 429 else 7200
    assert expected - 2 <= delay <= expected + 1  # not the schedule's 5 s


async def test_410_disables_the_subscriber_and_dead_letters_what_is_left(
    db: Db, settings: Settings, receiver: Receiver
) -> None:
    receiver.behave("gone", status=410)
    await _add(db, "gone", receiver.endpoint("gone"))
    await store(db, wyre_event(), wyre_event())
    async with notify_env(settings) as env:
        first, second = [r["id"] for r in await _notifications(db)]
        assert (await deliver(env.deps, env.runtime, first, 1)).outcome == "gone"
        assert (await deliver(env.deps, env.runtime, second, 1)).outcome == "disabled"
    assert len(receiver.received) == 1
    sub = await db.fetchrow("SELECT enabled, disabled_reason FROM subscribers")
    assert sub is not None and not sub["enabled"] and "410" in sub["disabled_reason"]
    assert [r["status"] for r in await _notifications(db)] == ["dead", "dead"]
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL") == 2
    await store(db, wyre_event())  # a disabled subscriber gets no new notifications
    assert len(await _notifications(db)) == 2


async def test_redirects_and_refused_connections_are_failures(db: Db, settings: Settings, redis: Redis) -> None:
    await _add(db, "nobody", refused_url())
    await store(db, wyre_event())
    async with notify_env(settings) as env:
        (nid,) = [r["id"] for r in await _notifications(db)]
        assert (await deliver(env.deps, env.runtime, nid, 1)).outcome == "retry"
    row = await db.fetchrow("SELECT outcome, status_code, error FROM delivery_attempts")
    assert row is not None and row["outcome"] == "failed" and row["status_code"] is None
    assert "Connect" in row["error"]
    assert orjson.loads(orjson.dumps(row["error"]))  # a plain string, fit for the API


async def test_the_breaker_isolates_a_dead_subscriber_while_another_gets_everything(
    gateway: Gateway, settings: Settings, db: Db, receiver: Receiver, run_worker: RunWorker
) -> None:
    receiver.behave("dead", delay_s=30.0)  # hangs far past the attempt timeout
    await _add(db, "dead", receiver.endpoint("dead"))
    await _add(db, "alive", receiver.endpoint("alive"))
    client = await gateway(settings)
    for i in range(40):
        assert (await client.post(URL, data=wyre_transaction("CONFIRMED", f"TR_BREAKER{i:04d}"))).status == 200
    # 10 worker slots: without the cap and the breaker, hung attempts to "dead" would hold them all.
    policy = DeliveryPolicy(
        schedule_s=(0.2,), timeout_s=6.0, breaker_threshold=3, breaker_cooldown_s=600, max_inflight=3
    )
    metrics = await run_worker(settings, ctx={POLICY: policy}, max_jobs=10)

    dead, alive = receiver.at("dead"), receiver.at("alive")
    assert len(alive) == 40
    # "alive" got its notifications while the first attempts to "dead" were still hanging (all but
    # a straggler or two: "alive" has the same per-subscriber cap, and a capped attempt waits its turn).
    hung_until = min(r.at for r in dead) + policy.timeout_s
    assert sum(r.at < hung_until for r in alive) >= 38
    # At most the failures that open it, plus attempts already in flight when it opened.
    assert len(dead) <= policy.breaker_threshold + policy.max_inflight - 1
    rows = await _notifications(db)
    assert {(r["status"], r["attempts"]) for r in rows if r["name"] == "alive"} == {("delivered", 1)}
    assert [r["status"] for r in rows if r["name"] == "dead"] == ["dead"] * 40
    blocked = await db.fetchval("SELECT count(*) FROM delivery_attempts WHERE outcome = 'breaker_open'")
    assert blocked >= 80 - len(dead)
    assert sample_value(metrics, "callgate_notification_breaker_transitions_total", {"change": "opened"}) == 1
    assert sample_value(metrics, "callgate_dead_letters_total", {"job": "deliver_notification"}) == 40


async def _true(value: bool) -> bool:
    return value


async def test_a_worker_killed_between_delivery_and_bookkeeping_resends_the_same_webhook_id(
    gateway: Gateway, settings: Settings, db: Db, redis: Redis, receiver: Receiver, run_worker: RunWorker
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "CALLGATE_WORKER_METRICS_PORT": "0",
        "CALLGATE_LOG_JSON": "false",
        "CALLGATE_LOG_LEVEL": "WARNING",
    }
    worker = subprocess.Popen([sys.executable, "-m", "callgate.cli", "worker"], env=env)  # noqa: ASYNC220

    async def kill_the_worker(_: Received) -> None:
        if len(receiver.at("crash")) == 1:
            worker.kill()  # SIGKILL: the answer below is never read, nothing is recorded
            await asyncio.to_thread(worker.wait)

    receiver.behave("crash", hook=kill_the_worker)
    await _add(db, "crash", receiver.endpoint("crash"))
    client = await gateway(settings)
    try:
        assert (await client.post(URL, data=wyre_transaction("CONFIRMED", "TR_CRASH00001"))).status == 200
        await until(lambda: _true(worker.poll() is not None), timeout_s=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    (row,) = await _notifications(db)
    assert (row["status"], row["attempts"]) == ("pending", 0)  # delivered, but not recorded
    # arq re-runs a job whose worker vanished once its in-progress marker expires; expire it now
    # (the first attempt runs inside store_event: that is the job the kill interrupted).
    assert await redis.delete(*[k async for k in redis.scan_iter("arq:in-progress:*")]) == 1
    await run_worker(settings)
    first, second = receiver.at("crash")
    assert first.webhook_id == second.webhook_id == row["id"]
    (row,) = await _notifications(db)
    assert (row["status"], row["attempts"]) == ("delivered", 1)
