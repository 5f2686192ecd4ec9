"""Postgres access: the pool, the migration runner and the event queries.

Migrations are plain SQL files in `shared/migrations/`, applied in name order inside one
transaction each, tracked in `schema_migrations`, under an advisory lock so that several
processes starting at once apply each file exactly once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from shared.jobs import EventEnvelope

logger = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x63616C6C67617465  # "callgate"

if TYPE_CHECKING:
    # asyncpg's classes are generic only in its stubs.
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    Pool = asyncpg.Pool
    Connection = asyncpg.Connection | PoolConnectionProxy


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb in and out as orjson: the default json module is several times slower.
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> Pool:
    """A connection pool whose connections speak jsonb as Python objects."""
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset_connection
    )


async def _reset_connection(conn: Connection) -> None:
    """What a connection needs before the pool hands it out again: only an unfinished transaction.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on
    every release: a round trip per checkout (about 5 % of a worker's CPU). callgate keeps no
    session state on pooled connections (no SET, LISTEN or cursors outside a transaction; the
    migration lock is released in its own `finally`), so there is nothing else to undo.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration shipped with the package, in order."""
    folder = resources.files("shared") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name, p.read_text()) for p in files]


async def migrate(conn: Connection) -> list[str]:
    """Apply every migration not yet applied; returns the names applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for name, sql in migration_files():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            logger.info("migration applied: %s", name)
            applied_now.append(name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


_INSERT_EVENTS = """
INSERT INTO events (provider, kind, idempotency_key, request_id, raw_body, payload, headers,
                    status, decision, policy_version, received_at)
SELECT e.provider, e.kind, e.idempotency_key, e.request_id, e.raw_body,
       COALESCE(e.payload::jsonb, replace(convert_from(e.raw_body, 'UTF8'), '\\u0000', '\\ufffd')::jsonb),
       e.headers::jsonb, e.status, e.decision::jsonb, e.policy_version, e.received_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[],
            $8::text[], $9::text[], $10::int[], $11::timestamptz[])
     AS e(provider, kind, idempotency_key, request_id, raw_body, payload, headers,
          status, decision, policy_version, received_at)
ON CONFLICT (provider, idempotency_key) DO NOTHING
RETURNING provider, idempotency_key
"""


def _json_text(value: Any) -> str | None:
    return None if value is None else jsonb_safe(orjson.dumps(value).decode())


def jsonb_safe(json_text: str) -> str:
    """JSON text Postgres's jsonb accepts: jsonb cannot hold NUL (\\u0000) and refuses the whole
    row, though valid JSON may carry it. It becomes U+FFFD (visibly altered); the raw body column
    keeps the exact bytes that arrived."""
    return json_text.replace("\\u0000", "\\ufffd")


async def insert_events(conn: Connection, events: Sequence[EventEnvelope]) -> set[tuple[str, str]]:
    """Insert events idempotently in one statement; returns the (provider, key) pairs inserted now."""
    columns: list[list[Any]] = [[] for _ in range(11)]
    for e in events:
        row = (
            e.provider,
            e.kind,
            e.idempotency_key,
            e.request_id,
            e.raw_body,
            _json_text(e.payload),
            _json_text(e.headers),
            e.status,
            _json_text(e.decision),
            e.policy_version,
            dt.datetime.fromtimestamp(e.received_at, dt.UTC),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    rows = await conn.fetch(_INSERT_EVENTS, *columns)
    return {(r["provider"], r["idempotency_key"]) for r in rows}
