"""The notification outbox in Postgres: written with the event rows, read and updated by deliveries.

A notification row is created in the same transaction as its event row (`write_outbox`, called
by the event writer), so a stored event always has its notifications; jobs only move rows on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from shared.db import Connection
from shared.jobs import DELIVER_NOTIFICATION, EventEnvelope
from shared.notify.normalize import notification_body

# The id is the `webhook-id`: `msg_` + 32 hex, no `.` (the spec forbids it inside the signed content).
_WRITE_OUTBOX = """
INSERT INTO notifications (id, subscriber_id, event_id, event_type, payload)
SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), s.id, ev.id, n.type,
       jsonb_set(n.body::jsonb, '{data,event_id}', to_jsonb(ev.id::text))
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS n(provider, key, type, body)
JOIN events ev ON ev.provider = n.provider AND ev.idempotency_key = n.key
JOIN subscribers s ON s.enabled AND (
       cardinality(s.event_types) = 0
    OR n.type = ANY (s.event_types)
    OR '*' = ANY (s.event_types)
    OR EXISTS (SELECT 1 FROM unnest(s.event_types) AS p(pattern)
               WHERE right(p.pattern, 2) = '.*' AND starts_with(n.type, left(p.pattern, -1))))
ON CONFLICT (event_id, subscriber_id) DO NOTHING
"""


async def write_outbox(conn: Connection, events: Sequence[EventEnvelope]) -> None:
    """One notification per (event, matching enabled subscriber); a no-op for rows already there."""
    if not events:
        return
    columns: list[list[str]] = [[], [], [], []]
    for e in events:
        body = notification_body(e)
        for column, value in zip(
            columns, (e.provider, e.idempotency_key, body["type"], orjson.dumps(body).decode()), strict=True
        ):
            column.append(value)
    await conn.execute(_WRITE_OUTBOX, *columns)


async def pending_for_events(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[Delivery]]:
    """The notifications never attempted yet of each event, by (provider, idempotency key), in one
    query: what the events' delivery follow-ups send (the writer reads them with the events)."""
    if not keys:
        return {}
    rows = await conn.fetch(_PENDING, [k[0] for k in keys], [k[1] for k in keys])
    found: dict[tuple[str, str], list[Delivery]] = {}
    for r in rows:
        found.setdefault((r["provider"], r["idempotency_key"]), []).append(_delivery(r))
    return found


@dataclass(frozen=True, slots=True)
class Delivery:
    """A notification with what is needed to send it."""

    id: str
    status: str
    attempts: int
    body: bytes
    subscriber_id: int
    url: str
    enabled: bool
    secrets: tuple[str, ...]  # current first, then the previous one while it is valid
    request_id: str | None = None  # the gateway request that brought its event (log correlation)


_LOAD = """
SELECT n.id, n.status, n.attempts, n.payload, s.id AS subscriber_id, s.url, s.enabled, s.secret,
       CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret END AS previous_secret,
       e.provider, e.idempotency_key, e.request_id
FROM notifications n JOIN subscribers s ON s.id = n.subscriber_id JOIN events e ON e.id = n.event_id
WHERE n.id = $1
"""

_PENDING = _LOAD.replace(
    "WHERE n.id = $1",
    "JOIN unnest($1::text[], $2::text[]) AS k(provider, key) ON e.provider = k.provider AND e.idempotency_key = k.key\n"
    "WHERE n.status = 'pending' AND n.attempts = 0",
)


async def load(conn: Connection, notification_id: str) -> Delivery | None:
    """The notification and its subscriber; None when there is no such notification."""
    row = await conn.fetchrow(_LOAD, notification_id)
    return None if row is None else _delivery(row)


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        id=row["id"],
        status=row["status"],
        attempts=row["attempts"],
        # jsonb comes back with its keys in a fixed order: every attempt sends the same bytes.
        body=orjson.dumps(row["payload"]),
        subscriber_id=row["subscriber_id"],
        url=row["url"],
        enabled=row["enabled"],
        secrets=tuple(s for s in (row["secret"], row["previous_secret"]) if s),
        request_id=row["request_id"],
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt did, as recorded."""

    number: int
    started_at: float
    duration_ms: int
    outcome: str  # delivered | failed | throttled | gone
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """An attempt to record on its notification: the row's new status and next attempt time."""

    notification_id: str
    attempt: Attempt
    status: str  # pending | delivered | dead
    next_at: float | None = None


# Many attempts in one statement: each row is updated only if it expects that attempt.
_RECORD = """
WITH x AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[], $5::int[], $6::text[],
                         $7::timestamptz[], $8::int[], $9::text[])
        AS x(id, attempt, status, next_at, status_code, error, started_at, duration_ms, outcome)
), n AS (
    UPDATE notifications t
    SET status = x.status, attempts = x.attempt, next_attempt_at = COALESCE(x.next_at, t.next_attempt_at),
        last_status = x.status_code, last_error = x.error,
        delivered_at = CASE WHEN x.status = 'delivered' THEN now() END
    FROM x WHERE t.id = x.id AND t.attempts = x.attempt - 1 AND t.status = 'pending'
    RETURNING t.id, x.attempt, x.status, x.status_code, x.error, x.started_at, x.duration_ms, x.outcome
), a AS (
    INSERT INTO delivery_attempts (notification_id, attempt, attempted_at, duration_ms, status_code, outcome, error)
    SELECT id, attempt, started_at, duration_ms, status_code, outcome, error FROM n
), d AS (
    INSERT INTO dead_letters (job, ref, args, reason)
    SELECT $10, id, jsonb_build_array(id), COALESCE(error, outcome) FROM n WHERE status = 'dead'
    ON CONFLICT (job, ref) WHERE replayed_at IS NULL DO NOTHING
)
SELECT id FROM n
"""


async def record(
    conn: Connection, notification_id: str, attempt: Attempt, *, status: str, next_at: float | None
) -> bool:
    """Write an attempt's outcome (and the dead letter when `status` is dead) in one statement.

    Only the attempt the row expects is recorded: a job re-run after its bookkeeping landed
    changes nothing. Returns False in that case.
    """
    (updated,) = await record_many(conn, [Outcome(notification_id, attempt, status, next_at)])
    return updated


async def record_many(conn: Connection, outcomes: Sequence[Outcome]) -> list[bool]:
    """`record` for many attempts in one statement; True per outcome written."""
    if len({o.notification_id for o in outcomes}) < len(outcomes):
        # Two attempts of one notification: each must see the row the one before left.
        return [(await record_many(conn, [o]))[0] for o in outcomes]
    columns: list[list[Any]] = [[] for _ in range(9)]
    for o in outcomes:
        a = o.attempt
        values = (o.notification_id, a.number, o.status, None if o.next_at is None else _ts(o.next_at),
                  a.status_code, a.error, _ts(a.started_at), a.duration_ms, a.outcome)  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    updated = {r["id"] for r in await conn.fetch(_RECORD, *columns, DELIVER_NOTIFICATION)}
    return [o.notification_id in updated for o in outcomes]


async def kill(conn: Connection, notification_id: str, reason: str) -> bool:
    """Dead-letter a pending notification without an attempt (its subscriber is disabled)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE notifications SET status = 'dead', last_error = $2"
            " WHERE id = $1 AND status = 'pending' RETURNING id",
            notification_id,
            reason,
        )
        if row is None:
            return False
        await dead_letter(conn, DELIVER_NOTIFICATION, notification_id, [notification_id], reason)
    return True


async def dead_letter(conn: Connection, job: str, ref: str, args: Sequence[Any], reason: str) -> None:
    """Record a job that will not run again by itself; `callgate replay` re-enqueues it."""
    await conn.execute(
        "INSERT INTO dead_letters (job, ref, args, reason) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (job, ref) WHERE replayed_at IS NULL DO NOTHING",
        job,
        ref,
        list(args),
        reason,
    )


def _ts(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
