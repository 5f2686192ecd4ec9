"""The pool's release: a transaction left open is rolled back, nothing else is sent."""

from __future__ import annotations

from shared.db import create_pool


async def test_a_transaction_left_open_is_rolled_back_before_the_connection_is_reused(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TEMPORARY TABLE pool_probe (n int)")
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO pool_probe VALUES (1)")
            assert conn.is_in_transaction()
        async with pool.acquire() as again:  # the same connection (max_size=1)
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT count(*) FROM pool_probe") == 0
    finally:
        await pool.close()


async def test_session_state_outside_a_transaction_is_kept(database_url: str) -> None:
    # Documents the choice: no RESET ALL on release (callgate keeps no session settings).
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'probe'")
        async with pool.acquire() as again:
            assert await again.fetchval("SHOW application_name") == "probe"
    finally:
        await pool.close()
