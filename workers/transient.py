"""What "transient" means for every job: the one definition each job's retry policy reuses.

A transient failure says "Postgres (or Redis) is not there right now", not "this job is bad": the
job is retried later and never dead-lettered or dropped. Kept apart from the job modules so that
each can import it without import cycles (`store` imports the follow-ups, which import `deliver`).
"""

from __future__ import annotations

import asyncpg
from redis.exceptions import RedisError

# Postgres away: a failover, a restart, maintenance, a connection that died mid-query.
POSTGRES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.CannotConnectNowError,  # 57P03: starting up, shutting down, in recovery
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    # A connection that died mid-query can fail its release this way ("cannot switch to state
    # 15; another operation is in progress"): seen when PostgreSQL is killed under load.
    asyncpg.InternalClientError,
)

# Jobs that also use Redis (deliveries: the breaker; risk: velocity windows; reconciliation).
POSTGRES_OR_REDIS = (*POSTGRES, RedisError)
