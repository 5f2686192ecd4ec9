"""`store_event`: persist an accepted callback exactly once, then start its follow-ups."""

from __future__ import annotations

import logging

import asyncpg
from arq import Retry

from shared.jobs import EventEnvelope
from workers.deps import JobCtx, WorkerDeps, deps
from workers.followups import FOLLOW_UPS

logger = logging.getLogger(__name__)

# Postgres may be away for a while (failover, maintenance): retry for about four hours.
BACKOFF_S = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 3600, 3600)
MAX_TRIES = len(BACKOFF_S) + 1

# Failures that say "Postgres is not there right now", not "this event is bad".
TRANSIENT = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    # A connection that died mid-query can fail its release this way ("cannot switch to state
    # 15; another operation is in progress"): seen when PostgreSQL is killed under load.
    asyncpg.InternalClientError,
)


async def store_event(ctx: JobCtx, envelope: object) -> str:
    """Insert the event row (ON CONFLICT DO NOTHING) and enqueue provider follow-ups once."""
    try:
        return await persist(deps(ctx), EventEnvelope.from_json(envelope))
    except TRANSIENT as e:
        try_ = int(ctx.get("job_try", 1))
        raise Retry(defer=BACKOFF_S[min(try_, len(BACKOFF_S)) - 1]) from e


async def persist(d: WorkerDeps, event: EventEnvelope) -> str:
    """The job body without arq: store, count, follow up. Returns "inserted" or "present"."""
    inserted = await d.writer.store(event)
    result = "inserted" if inserted else "present"
    d.metrics.events_stored.labels(event.provider, result).inc()
    logger.info("event %s/%s %s (request %s)", event.provider, event.kind, result, event.request_id)
    # Follow-ups are enqueued on every run, not only the inserting one: a worker killed between
    # the insert and the enqueue must not lose them. Their job ids make the repeat a no-op.
    for follow_up in (*FOLLOW_UPS.get(event.provider, ()), *FOLLOW_UPS.get("*", ())):
        await follow_up(d, event)
    return result
