"""`callgate migrate` is idempotent and tracked."""

from __future__ import annotations

import asyncpg

from shared.db import migrate, migration_files


async def test_migrations_are_all_applied_once_and_a_second_run_applies_nothing(
    db: asyncpg.Pool[asyncpg.Record],
) -> None:
    async with db.acquire() as conn:
        assert await migrate(conn) == []  # the session fixture applied them already
        applied = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations ORDER BY name")]
    names = [name for name, _ in migration_files()]
    assert applied == names
    assert names[0] == "0001_events.sql"
    assert len(set(n[:4] for n in names)) == len(names), "two migrations share a number"
