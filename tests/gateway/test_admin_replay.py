"""Gateway: the admin replay API through the real app, a real worker and a real receiver.

Notifications are delivered the real way first; the test then marks rows dead as the delivery
job does after its last attempt (the schedule's hours are not waited out here).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from callgate.demo import wyre_transaction
from shared.config import Settings
from shared.db import Pool as Db
from shared.jobs import DELIVER_NOTIFICATION, STORE_EVENT, EventEnvelope
from shared.notify.outbox import dead_letter
from tests.conftest import WYRE_TOKEN, RunWorker
from tests.forwarder import forwarding
from tests.gateway.test_admin_orders import AUTH, admin
from tests.gateway.test_admin_subscribers import receiver
from tests.receiver import Receiver

Client = TestClient[web.Request, web.Application]
Gateway = Callable[[Settings], Awaitable[Client]]
URL = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
__all__ = ["receiver"]  # the fixture, shared with the subscribers tests


@pytest.fixture
async def delivered(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, receiver: Receiver, db: Db
) -> AsyncIterator[tuple[Client, Settings]]:
    """Two subscribers, three Wyre events, every notification delivered once: six in all."""
    configured = admin(settings)
    client = await gateway(configured)
    for name in ("books", "audit"):
        body = {"name": name, "url": receiver.endpoint(name)}
        assert (await client.post("/admin/subscribers", json=body, headers=AUTH)).status == 201
    for tx in ("TR_REPLAY1", "TR_REPLAY2", "TR_REPLAY3"):
        assert (await client.post(URL, data=wyre_transaction("CONFIRMED", tx))).status == 200
    await run_worker(configured)
    assert len(receiver.received) == 6
    receiver.received.clear()
    yield client, configured


async def _kill(db: Db, *, only_first: bool = False) -> list[str]:
    """Mark notifications dead the way the delivery job leaves them after its last attempt."""
    rows = await db.fetch(
        "UPDATE notifications SET status = 'dead'"
        " WHERE NOT $1 OR id = (SELECT min(id) FROM notifications) RETURNING id",
        only_first,
    )
    async with db.acquire() as conn:
        for row in rows:
            await dead_letter(conn, DELIVER_NOTIFICATION, row["id"], [row["id"]], "HTTP 500 x8")
    return sorted(r["id"] for r in rows)


async def _replay(client: Client, body: object, path: str = "/admin/replay/notifications") -> dict[str, Any]:
    response = await client.post(path, data=orjson.dumps(body), headers=AUTH)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert isinstance(answer, dict)
    return answer


async def test_replay_by_id_delivers_again_with_the_same_webhook_id(
    delivered: tuple[Client, Settings], run_worker: RunWorker, receiver: Receiver, db: Db
) -> None:
    client, settings = delivered
    dead = await _kill(db)
    answer = await _replay(client, {"ids": dead[:2]})
    assert answer["count"] == 2 and answer["replayed"] == [{"id": i, "attempt": 1} for i in dead[:2]]
    # Sent twice: the attempt is queued once (stable job ids), delivered once.
    await _replay(client, {"ids": dead[:2], "statuses": ["pending"]})
    await run_worker(settings)
    assert sorted(r.webhook_id for r in receiver.received) == dead[:2]
    statuses = await db.fetch("SELECT id, status FROM notifications ORDER BY id")
    assert {r["id"]: r["status"] for r in statuses} == {i: "delivered" if i in dead[:2] else "dead" for i in dead}
    open_letters = await db.fetch("SELECT ref FROM dead_letters WHERE replayed_at IS NULL ORDER BY ref")
    assert [r["ref"] for r in open_letters] == dead[2:]


async def test_replay_by_subscriber_and_by_time_range(
    delivered: tuple[Client, Settings], run_worker: RunWorker, receiver: Receiver, db: Db
) -> None:
    client, settings = delivered
    await db.execute(
        "UPDATE notifications SET created_at = now() - interval '2 days'"
        " WHERE event_id = (SELECT id FROM events WHERE idempotency_key = 'TR_REPLAY1:CONFIRMED')"
    )
    await _kill(db)
    assert (await _replay(client, {"subscriber": "books"}))["count"] == 3
    day_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    assert (await _replay(client, {"since": day_ago}))["count"] == 2  # audit's two recent ones
    await run_worker(settings)
    assert len(receiver.at("books")) == 3 and len(receiver.at("audit")) == 2
    # A naive time is UTC; what is left is audit's old one.
    naive = day_ago.removesuffix("+00:00")
    assert (await _replay(client, {"until": naive, "subscriber": "audit"}))["count"] == 1
    await run_worker(settings)
    assert len(receiver.at("audit")) == 3
    assert await db.fetchval("SELECT count(*) FROM notifications WHERE status <> 'delivered'") == 0


async def test_dead_letters_listed_and_replayed_by_id(
    delivered: tuple[Client, Settings], run_worker: RunWorker, receiver: Receiver, db: Db
) -> None:
    client, settings = delivered
    [notification] = await _kill(db, only_first=True)
    # A store_event job given up on: its envelope is re-enqueued with the same arguments.
    raw = wyre_transaction("PENDING", "TR_LETTER1")
    event = EventEnvelope("wyre", "transaction.pending", "TR_LETTER1:PENDING", 1.0, raw, "r-1").to_json()
    async with db.acquire() as conn:
        await dead_letter(conn, STORE_EVENT, "wyre:TR_LETTER1:PENDING", [event], "refused")
    listed = await (await client.get("/admin/dead-letters", headers=AUTH)).json()
    by_job = {x["job"]: x["id"] for x in listed["dead_letters"]}
    assert set(by_job) == {STORE_EVENT, DELIVER_NOTIFICATION}
    only = await (await client.get(f"/admin/dead-letters?job={STORE_EVENT}", headers=AUTH)).json()
    assert [x["id"] for x in only["dead_letters"]] == [by_job[STORE_EVENT]]

    answer = await _replay(client, {"ids": [*by_job.values(), 999999]}, "/admin/replay/dead-letters")
    assert answer["replayed"] == sorted([{"id": i, "job": j} for j, i in by_job.items()], key=lambda x: x["id"])
    assert answer["not_open"] == [999999]
    await run_worker(settings)
    assert [r.webhook_id for r in receiver.at("books") + receiver.at("audit")].count(notification) == 1
    assert await db.fetchval("SELECT count(*) FROM events WHERE idempotency_key = 'TR_LETTER1:PENDING'") == 1
    again = await _replay(client, {"ids": list(by_job.values())}, "/admin/replay/dead-letters")
    assert again["replayed"] == [] and sorted(again["not_open"]) == sorted(by_job.values())


async def test_replay_refusals(delivered: tuple[Client, Settings]) -> None:
    client, _ = delivered
    for body, said in [
        ({}, "at least one"),
        ({"ids": "n-1"}, "ids"),
        ({"subscriber": "books", "statuses": ["gone"]}, "statuses"),
        ({"since": "yesterday"}, "ISO 8601"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "after since"),
        ({"subscriber": "books", "everything": True}, "unknown fields"),
    ]:
        response = await client.post("/admin/replay/notifications", data=orjson.dumps(body), headers=AUTH)
        assert response.status == 400 and said in (await response.json())["detail"], body
    for body in ({}, {"ids": []}, {"ids": ["1"]}, {"ids": [True]}, {"ids": [0]}):
        response = await client.post("/admin/replay/dead-letters", data=orjson.dumps(body), headers=AUTH)
        assert response.status == 400, body
    assert (await client.get("/admin/dead-letters?limit=0", headers=AUTH)).status == 400
    assert (await client.post("/admin/replay/notifications", json={"ids": ["x"]})).status == 401


async def test_redis_failing_after_the_reset_is_said_and_recoverable(
    delivered: tuple[Client, Settings], gateway: Gateway, run_worker: RunWorker, receiver: Receiver, db: Db
) -> None:
    client, settings = delivered
    dead = await _kill(db, only_first=True)
    parts = urlsplit(settings.redis_url)
    async with forwarding(parts.hostname or "127.0.0.1", parts.port or 6379) as forwarder:
        through = dataclasses.replace(settings, redis_url=parts._replace(netloc=f"127.0.0.1:{forwarder.port}").geturl())
        cut_off = await gateway(through)
        await forwarder.cut()
        response = await cut_off.post("/admin/replay/notifications", json={"ids": dead}, headers=AUTH)
        assert response.status == 503 and '"statuses": ["pending"]' in (await response.json())["detail"]
    assert await db.fetchval("SELECT status FROM notifications WHERE id = $1", dead[0]) == "pending"
    # What the answer says to do, on a gateway that reaches Redis: the attempt is enqueued.
    assert (await _replay(client, {"ids": dead, "statuses": ["pending"]}))["count"] == 1
    await run_worker(settings)
    assert [r.webhook_id for r in receiver.received] == dead
