"""`store_event`: persist an accepted callback exactly once, then start its follow-ups."""

from __future__ import annotations

import logging

import asyncpg
import orjson

from shared.db import jsonb_safe
from shared.errors import InvalidInput
from shared.jobs import STORE_EVENT, EventEnvelope
from shared.notify.outbox import dead_letter
from workers import transient
from workers.consumer import Retry
from workers.deps import JobCtx, WorkerDeps, deps
from workers.followups import FOLLOW_UPS

logger = logging.getLogger(__name__)

# Postgres may be away for a while (failover, maintenance). An acknowledged callback is never
# given up on: after the ramp, one try an hour for a month (the `jobs{outcome="retry"}` alert
# fires long before). Its arq job outlives that: jobs are kept as long as dedup markers.
BACKOFF_S = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600)
MAX_TRIES = 24 * 31

# Failures that say "Postgres is not there right now", not "this event is bad".
TRANSIENT = transient.POSTGRES


async def store_event(ctx: JobCtx, envelope: object) -> str:
    """Insert the event row (ON CONFLICT DO NOTHING) and enqueue provider follow-ups once."""
    d = deps(ctx)
    try:
        return await persist(d, EventEnvelope.from_json(envelope))
    except TRANSIENT as e:
        raise Retry(defer=backoff(ctx)) from e
    except (asyncpg.PostgresError, InvalidInput) as e:
        # The row itself is refused (a constraint, a value Postgres cannot hold): retrying cannot
        # help. Keep the job for a replay after a fix, and say so loudly.
        logger.error("store_event refused permanently: %s", e)
        try:
            async with d.pool.acquire() as conn:
                args = orjson.loads(jsonb_safe(orjson.dumps([envelope]).decode()))
                await dead_letter(conn, STORE_EVENT, _ref(envelope), args, f"{type(e).__name__}: {e}")
        except TRANSIENT as again:
            raise Retry(defer=backoff(ctx)) from again
        d.metrics.events_stored.labels(_provider(envelope), "dead_lettered").inc()
        return "dead_lettered"


def backoff(ctx: JobCtx) -> int:
    """The retry delay for this try of a job whose failure was transient (the ramp, then hourly)."""
    try_ = int(ctx.get("job_try", 1))
    return BACKOFF_S[min(try_, len(BACKOFF_S)) - 1]


def _provider(envelope: object) -> str:
    provider = envelope.get("provider") if isinstance(envelope, dict) else None
    return provider if isinstance(provider, str) and provider.isidentifier() else "unknown"


def _ref(envelope: object) -> str:
    key = envelope.get("idempotency_key") if isinstance(envelope, dict) else None
    return f"{_provider(envelope)}:{key}"


async def persist(d: WorkerDeps, event: EventEnvelope) -> str:
    """The job body without arq: store, count, follow up. Returns "inserted" or "present"."""
    stored = await d.writer.store(event)
    result = "inserted" if stored.inserted else "present"
    d.metrics.events_stored.labels(event.provider, result).inc()
    logger.info("event %s/%s %s (request %s)", event.provider, event.kind, result, event.request_id)
    # Follow-ups are enqueued on every run, not only the inserting one: a worker killed between
    # the insert and the enqueue must not lose them. Their job ids make the repeat a no-op.
    for follow_up in (*FOLLOW_UPS.get(event.provider, ()), *FOLLOW_UPS.get("*", ())):
        await follow_up(d, stored)
    return result
