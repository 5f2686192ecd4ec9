"""`callgate subscribers` and `callgate replay`: real CLI parsing, real queue, real worker."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from standardwebhooks import Webhook

from callgate.cli import COMMANDS, _parser
from shared.config import Settings
from shared.db import Pool
from shared.notify import outbox, subscribers
from shared.notify.schedule import DeliveryPolicy
from tests.conftest import RunWorker
from tests.receiver import Receiver
from tests.workers.notify_support import notify_env, store, wyre_event
from workers.deliver import deliver


@pytest.fixture
async def receiver(redis: Redis) -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def _cli(settings: Settings, *argv: str) -> int:
    args = _parser().parse_args(list(argv))
    # The verbs run their own event loop (asyncio.run), as they do from a shell.
    return await asyncio.to_thread(COMMANDS[args.command], args, settings)


async def test_subscribers_add_list_disable_from_the_cli(
    settings: Settings, db: Pool, redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        await _cli(settings, "subscribers", "add", "ledger", "https://ledger.example/hooks", "--types", "wyre.*") == 0
    )
    secret = capsys.readouterr().out.split("secret ")[1].strip()
    assert Webhook(secret)  # a whsec_ secret the official library accepts
    assert await _cli(settings, "subscribers", "add", "bad", "ftp://x") == 2
    assert await _cli(settings, "subscribers", "disable", "ledger", "--reason", "maintenance") == 0
    assert await _cli(settings, "subscribers", "disable", "nobody") == 1
    capsys.readouterr()
    assert await _cli(settings, "subscribers", "list") == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.split("\t")[1:4] == ["ledger", "disabled (maintenance)", "breaker=closed"]
    assert await db.fetchval("SELECT secret FROM subscribers WHERE name = 'ledger'") == secret


async def test_a_dead_notification_replayed_keeps_its_webhook_id(
    settings: Settings, db: Pool, receiver: Receiver, run_worker: RunWorker
) -> None:
    receiver.behave("flaky", status=500)
    async with db.acquire() as conn:
        _, secret = await subscribers.add(conn, "flaky", receiver.endpoint("flaky"))
    await store(db, wyre_event("TR_REPLAY001"))
    async with notify_env(settings, policy=DeliveryPolicy(schedule_s=(1.0,))) as env:
        nid = await db.fetchval("SELECT id FROM notifications")
        assert (await deliver(env.deps, env.runtime, nid, 1)).outcome == "retry"
        assert (await deliver(env.deps, env.runtime, nid, 2)).outcome == "dead"
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL") == 1

    receiver.behave("flaky", status=200)
    await run_worker(settings)  # the attempt-2 job left in the queue finds the row dead: no send
    assert len(receiver.received) == 2
    assert await _cli(settings, "replay", "--subscriber", "flaky") == 0
    await run_worker(settings)

    ids = [r.webhook_id for r in receiver.received]
    assert ids == [nid, nid, nid]
    Webhook(secret).verify(receiver.received[-1].body, receiver.received[-1].headers)
    row = await db.fetchrow("SELECT status, attempts FROM notifications")
    assert row is not None and (row["status"], row["attempts"]) == ("delivered", 1)
    assert await db.fetchval("SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL") == 0


async def test_replay_by_id_and_by_time_range_selects_only_those(
    settings: Settings, db: Pool, receiver: Receiver, run_worker: RunWorker
) -> None:
    async with db.acquire() as conn:
        await subscribers.add(conn, "books", receiver.endpoint("books"))
    await store(db, wyre_event("TR_OLD"), wyre_event("TR_NEW1"), wyre_event("TR_NEW2"))
    await db.execute(
        "UPDATE notifications n SET created_at = now() - interval '2 days' FROM events e"
        " WHERE e.id = n.event_id AND e.idempotency_key = 'TR_OLD:CONFIRMED'"
    )
    await _deliver_all(settings, db)
    assert len(receiver.received) == 3
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    assert await _cli(settings, "replay", "--since", since, "--status", "delivered") == 0
    await run_worker(settings)
    replayed = [r.webhook_id for r in receiver.received[3:]]
    new = await db.fetch(
        "SELECT n.id FROM notifications n JOIN events e ON e.id = n.event_id WHERE e.idempotency_key LIKE 'TR_NEW%'"
    )
    assert sorted(replayed) == sorted(r["id"] for r in new)
    old = await db.fetchval("SELECT id FROM notifications WHERE created_at < now() - interval '1 day'")
    assert await _cli(settings, "replay", "--id", old) == 0
    await run_worker(settings)
    assert receiver.received[-1].webhook_id == old and len(receiver.received) == 6


async def _deliver_all(settings: Settings, db: Pool) -> None:
    async with notify_env(settings) as env:
        for r in await db.fetch("SELECT id FROM notifications WHERE status = 'pending'"):
            await deliver(env.deps, env.runtime, r["id"], 1)


async def test_dead_letters_of_any_job_are_enqueued_again(
    settings: Settings, db: Pool, redis: Redis, run_worker: RunWorker
) -> None:
    event = wyre_event("TR_LETTER1")
    async with db.acquire() as conn:
        await outbox.dead_letter(conn, "store_event", event.idempotency_key, [event.to_json()], "postgres was away")
    assert await _cli(settings, "replay", "--dead-letters") == 0
    await run_worker(settings)
    assert await db.fetchval("SELECT idempotency_key FROM events") == "TR_LETTER1:CONFIRMED"
    assert await db.fetchval("SELECT replayed_at IS NOT NULL FROM dead_letters") is True
