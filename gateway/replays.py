"""Replays the admin API starts: notifications delivered again, dead letters re-enqueued by id.

The rows are reset by the notification pipeline's own `shared.notify.replay`, and the jobs are
enqueued under the ids `callgate replay` and the console use (`shared.jobs.delivery_job_id`,
`replay:<dead letter id>`), so a replay started twice, or from two places, queues each attempt
once. What `shared.notify.replay` has no query for (dead letters picked by id, the open ones
listed) is here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from shared.db import Connection, Pool
from shared.jobs import DELIVER_NOTIFICATION
from shared.notify import replay
from shared.queue import JobQueue


@dataclass(frozen=True, slots=True)
class OpenLetter:
    id: int
    job: str
    ref: str
    reason: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LetterReplay:
    """What a replay of dead letters by id did: (id, job) per letter replayed, and the ids left
    alone because they are not open dead letters (unknown, or replayed already)."""

    replayed: list[tuple[int, str]]
    not_open: list[int]


async def open_letters(conn: Connection, *, job: str | None, limit: int) -> list[OpenLetter]:
    """Dead letters not replayed yet, newest first (their arguments stay in the database)."""
    rows = await conn.fetch(
        "SELECT id, job, ref, reason, created_at FROM dead_letters WHERE replayed_at IS NULL"
        " AND ($1::text IS NULL OR job = $1) ORDER BY created_at DESC, id DESC LIMIT $2",
        job,
        limit,
    )
    return [OpenLetter(r["id"], r["job"], r["ref"], r["reason"], r["created_at"]) for r in rows]


async def notifications(pool: Pool, queue: JobQueue, selection: replay.Selection) -> list[tuple[str, int]]:
    """Reset the selected notifications and enqueue their next attempt; (id, attempt) each."""
    async with pool.acquire() as conn:
        picked = await replay.notifications(conn, selection)
    # Enqueued after the rows are reset: a job that ran first would find nothing to do.
    await queue.enqueue_many(replay.delivery_jobs(picked))
    return picked


async def letters(pool: Pool, queue: JobQueue, ids: Sequence[int]) -> LetterReplay:
    """Re-enqueue open dead letters by id. A dead notification delivery is replayed as its
    notification (reset, same `webhook-id`), as `callgate replay` does; others with their args."""
    async with pool.acquire() as conn, conn.transaction():
        refs = await conn.fetch(
            "SELECT id, ref FROM dead_letters WHERE id = ANY ($1) AND job = $2 AND replayed_at IS NULL",
            list(ids),
            DELIVER_NOTIFICATION,
        )
        # Marks these letters replayed too (the notification replay's own bookkeeping).
        selection = replay.Selection(ids=[r["ref"] for r in refs], statuses=replay.STATUSES)
        picked = await replay.notifications(conn, selection) if refs else []
        others = await conn.fetch(
            "UPDATE dead_letters SET replayed_at = now() WHERE id = ANY ($1) AND job <> $2 AND replayed_at IS NULL"
            " RETURNING id, job, args",
            list(ids),
            DELIVER_NOTIFICATION,
        )
    # The job ids `callgate replay` and the console use: a letter replayed twice is queued once.
    await queue.enqueue_many(
        replay.delivery_jobs(picked) + [replay.letter_job(r["job"], r["args"], r["id"]) for r in others]
    )
    found = {n for n, _ in picked}  # a letter whose notification row is gone stays open
    replayed = sorted(
        [(r["id"], DELIVER_NOTIFICATION) for r in refs if r["ref"] in found] + [(r["id"], r["job"]) for r in others]
    )
    done = {letter_id for letter_id, _ in replayed}
    return LetterReplay(replayed, sorted({i for i in ids if i not in done}))
