"""Private servers for the fault tests: theirs to kill, never the shared ones other tests use."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from callgate.embedded import EmbeddedPostgres, EmbeddedRedis
from shared.db import migrate


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = await asyncio.to_thread(EmbeddedRedis(tmp_path / "redis", appendfsync="always").start)
    yield server
    await asyncio.to_thread(server.stop)


def _traversable_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="callgate-fault-pg-"))
    folder.chmod(0o711)
    return folder


@pytest.fixture
async def private_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A migrated private cluster. Its folder is outside pytest's (0700) tmp tree: as root,
    PostgreSQL runs as `nobody`, which must be able to reach it."""
    folder = _traversable_folder()
    server = EmbeddedPostgres(folder / "pg")
    try:
        await asyncio.to_thread(server.start)
        conn = await asyncpg.connect(server.url)
        await migrate(conn)
        await conn.close()
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(shutil.rmtree, folder, True)
