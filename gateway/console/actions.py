"""What the console changes, always through the notification pipeline's own functions.

Replays reset rows with `shared.notify.replay` and enqueue the attempt under the workers' own job
id (`shared.jobs.delivery_job_id`), exactly as `callgate replay` does: a notification keeps its
`webhook-id`, and an attempt already queued is not queued twice. The console is an admin process,
not the gateway (it never serves callbacks), which is why it may use that one worker function.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from arq.connections import ArqRedis

from shared.db import Pool
from shared.notify import replay, subscribers
from shared.policy import store
from shared.policy.replay import ReplayReport, replay_recorded
from shared.queue import enqueue_jobs


async def replay_notifications(
    pool: Pool, arq: ArqRedis, *, ids: Sequence[str] | None = None, subscriber: str | None = None
) -> int:
    """Deliver dead notifications again (by id, or all of a subscriber's); returns how many."""
    async with pool.acquire() as conn:
        picked = await replay.notifications(conn, replay.Selection(ids=ids, subscriber=subscriber))
    # Enqueued after the rows are reset: a job that ran first would find nothing to do.
    await enqueue_jobs(arq, arq.default_queue_name, replay.delivery_jobs(picked))
    return len(picked)


async def replay_job_letters(pool: Pool, arq: ArqRedis, job: str) -> int:
    """Re-enqueue every open dead letter of one (non-notification) job with its arguments."""
    async with pool.acquire() as conn:
        letters = await replay.dead_letters(conn, job=job)
    await enqueue_jobs(arq, arq.default_queue_name, [replay.letter_job(x.job, x.args, x.id) for x in letters])
    return len(letters)


async def set_subscriber(pool: Pool, name: str, *, enabled: bool) -> bool:
    """Enable or disable a subscriber by name; False when there is none."""
    async with pool.acquire() as conn:
        return await subscribers.set_enabled(conn, name, enabled, reason="disabled from the console")


async def test_policy(pool: Pool, version: int) -> ReplayReport | None:
    """Decide the latest recorded requests under a stored version (None: no such version)."""
    stored = await store.load_version(pool, version, document_as_text=True)
    if stored is None:
        return None
    snapshot = await asyncio.to_thread(store.compile_stored, stored)  # CPU-bound, as in the holders
    return await replay_recorded(pool, snapshot)
