"""Postgres refusing connections while it starts up is transient for every job: retried, not lost.

The stand-in is a real TCP server speaking the PostgreSQL wire protocol just far enough to answer
each connection as a starting server does (FATAL 57P03), which asyncpg raises as
`CannotConnectNowError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest
from arq import Retry

from shared.config import Settings
from shared.db import Pool, create_pool
from shared.notify import subscribers
from tests.receiver import Receiver
from tests.workers.notify_support import notify_env, store, wyre_event
from workers.deliver import RUNTIME, deliver_notification
from workers.risk import assess_risk

SSL_REQUEST = 80877103
STARTING_UP = b"SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0\0"


async def _answer_starting_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            length = int.from_bytes(await reader.readexactly(4), "big")
            body = await reader.readexactly(length - 4)
            if length == 8 and int.from_bytes(body, "big") == SSL_REQUEST:
                writer.write(b"N")  # no TLS here; the client goes on in plain text
                continue
            break
        writer.write(b"E" + (len(STARTING_UP) + 4).to_bytes(4, "big") + STARTING_UP)
        await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def starting_postgres() -> AsyncIterator[Pool]:
    server = await asyncio.start_server(_answer_starting_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = await create_pool(f"postgresql://postgres@127.0.0.1:{port}/callgate", min_size=0, max_size=2)
    yield pool
    await pool.close()
    server.close()
    await server.wait_closed()


async def test_the_stand_in_answers_as_a_starting_postgres(starting_postgres: Pool) -> None:
    with pytest.raises(asyncpg.CannotConnectNowError):
        await starting_postgres.fetchval("SELECT 1")


async def test_delivery_and_risk_jobs_retry_when_postgres_cannot_take_connections_yet(
    settings: Settings, db: asyncpg.Pool[asyncpg.Record], starting_postgres: Pool
) -> None:
    receiver = await Receiver().start()
    try:
        async with db.acquire() as conn:
            await subscribers.add(conn, "downstream", receiver.endpoint("downstream"))
        event = wyre_event()
        await store(db, event)
        notification_id = await db.fetchval("SELECT id FROM notifications")
        async with notify_env(settings) as env:
            ctx = {"deps": dataclasses.replace(env.deps, pool=starting_postgres), RUNTIME: env.runtime, "job_try": 1}
            with pytest.raises(Retry):
                await deliver_notification(ctx, notification_id, 1)
            key = event.idempotency_key
            facts = {"provider": "wyre", "idempotency_key": key, "received_at": 1.0, "kyt_level": 95, "rejected": False}
            with pytest.raises(Retry):
                await assess_risk({**ctx, "risk_config": None}, facts)
    finally:
        await receiver.stop()
    row = await db.fetchrow("SELECT status, attempts FROM notifications WHERE id = $1", notification_id)
    assert row is not None and (row["status"], row["attempts"]) == ("pending", 0)  # untouched, not dead
    assert await db.fetchval("SELECT count(*) FROM dead_letters") == 0
    assert receiver.received == []  # the notification could not be read, so nothing was sent
