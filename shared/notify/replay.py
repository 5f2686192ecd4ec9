"""What `callgate replay` selects: notifications to deliver again and dead letters to re-enqueue.

A replayed notification keeps its id (the `webhook-id`), so a receiver that already has it can
tell; it starts again from attempt 1. A pending one is not reset: its next attempt is enqueued
now, which is a no-op when that attempt is already queued (the way to recover lost jobs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.db import Connection
from shared.jobs import DELIVER_NOTIFICATION, delivery_job_id
from shared.queue import NewJob

STATUSES = ("pending", "delivered", "dead")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which notifications: every given criterion must hold (None: not a criterion).

    Statuses not given: every status when notifications are named by id (the operator chose
    them), else only dead ones (a broad replay must not resend what was delivered)."""

    ids: Sequence[str] | None = None
    subscriber: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    statuses: Sequence[str] | None = None

    @property
    def chosen_statuses(self) -> Sequence[str]:
        if self.statuses:
            return self.statuses
        return STATUSES if self.ids else ("dead",)


_NOTIFICATIONS = """
WITH picked AS (
    SELECT n.id, n.status, n.attempts
    FROM notifications n JOIN subscribers s ON s.id = n.subscriber_id
    WHERE ($1::text[] IS NULL OR n.id = ANY ($1))
      AND ($2::text IS NULL OR s.name = $2)
      AND ($3::timestamptz IS NULL OR n.created_at >= $3)
      AND ($4::timestamptz IS NULL OR n.created_at < $4)
      AND n.status = ANY ($5)
    FOR UPDATE OF n
), reset AS (
    UPDATE notifications n
    SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL, delivered_at = NULL
    FROM picked p WHERE n.id = p.id AND p.status <> 'pending'
), letters AS (
    UPDATE dead_letters SET replayed_at = now()
    WHERE job = $6 AND replayed_at IS NULL AND ref IN (SELECT id FROM picked)
)
SELECT id, CASE WHEN status = 'pending' THEN attempts + 1 ELSE 1 END AS attempt FROM picked ORDER BY id
"""


async def notifications(conn: Connection, selection: Selection) -> list[tuple[str, int]]:
    """Reset the selected notifications; returns (id, attempt to enqueue) for each."""
    rows = await conn.fetch(
        _NOTIFICATIONS,
        None if selection.ids is None else list(selection.ids),
        selection.subscriber,
        selection.since,
        selection.until,
        list(selection.chosen_statuses),
        DELIVER_NOTIFICATION,
    )
    return [(r["id"], r["attempt"]) for r in rows]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    job: str
    args: list[Any]


async def dead_letters(
    conn: Connection, *, job: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[DeadLetter]:
    """Mark open dead letters of other jobs replayed and return them (notifications: see above)."""
    rows = await conn.fetch(
        "UPDATE dead_letters SET replayed_at = now()"
        " WHERE replayed_at IS NULL AND job <> $1 AND ($2::text IS NULL OR job = $2)"
        " AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)"
        " RETURNING id, job, args",
        DELIVER_NOTIFICATION,
        job,
        since,
        until,
    )
    return sorted((DeadLetter(r["id"], r["job"], list(r["args"])) for r in rows), key=lambda d: d.id)


# The job ids every replay uses (CLI, admin API, console): replaying the same thing twice queues it once.


def delivery_jobs(picked: Sequence[tuple[str, int]]) -> list[NewJob]:
    """The delivery jobs of replayed notifications, (id, attempt) each, under the workers' job ids."""
    return [NewJob(DELIVER_NOTIFICATION, (n, attempt), delivery_job_id(n, attempt)) for n, attempt in picked]


def letter_job(job: str, args: Sequence[Any], letter_id: int) -> NewJob:
    """A dead letter's job, enqueued again with its arguments."""
    return NewJob(job, tuple(args), f"replay:{letter_id}")
