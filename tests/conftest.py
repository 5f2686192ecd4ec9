"""Fixtures shared by every test: real Redis and PostgreSQL, isolated per test session.

Isolation without touching the shared services' configuration: each pytest session claims a
free Redis database index (1-15) with a lease in db 0 and creates its own PostgreSQL database;
each test starts from an empty Redis db and empty tables. With REQUIRE_SERVICES=1 (CI) an
unreachable service fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis as redis_sync
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.app import create_app
from shared.config import ProviderSettings, Settings, WyreSettings
from shared.db import create_pool, migrate
from shared.metrics import Metrics
from workers.settings import build_worker

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
WYRE_TOKEN = "wyre-path-token-" + secrets.token_hex(8)

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[web.Request, web.Application]]]


def _unreachable(what: str, url: str) -> None:
    message = f"{what} not reachable at {url}"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


_TAKE_OVER = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'EX', 3600) end"


def _reclaim(admin: redis_sync.Redis, name: str, lease: str) -> bool:
    """Take over the lease of a session that died without releasing it (killed on this host)."""
    held = cast(bytes | None, admin.get(name))
    if held is None:
        return bool(admin.set(name, lease, nx=True, ex=3600))
    host, _, rest = held.decode().partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
        return False
    except ProcessLookupError:
        # Compare-and-set, so two new sessions cannot both take the same dead lease.
        script = (
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'EX', 3600) end"
        )
        return bool(admin.eval(script, 1, name, held.decode(), lease))
    except PermissionError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis URL with a database index leased to this session alone."""
    if not _reachable(REDIS_BASE):
        _unreachable("redis", REDIS_BASE)
    admin = redis_sync.Redis.from_url(f"{REDIS_BASE}/0")
    lease = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    for index in range(1, 16):
        name = f"callgate:test-db:{index}"
        if admin.set(name, lease, nx=True, ex=3600) or _reclaim(admin, name, lease):
            break
    else:
        pytest.fail("no free Redis database index (1-15) for this test session")
    try:
        yield f"{REDIS_BASE}/{index}"
    finally:
        redis_sync.Redis.from_url(f"{REDIS_BASE}/{index}").flushdb()
        if admin.get(f"callgate:test-db:{index}") == lease.encode():
            admin.delete(f"callgate:test-db:{index}")
        admin.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL database created (and migrated) for this session, dropped at its end."""
    if not _reachable(POSTGRES_ADMIN):
        _unreachable("postgres", POSTGRES_ADMIN)
    name = f"callgate_test_{os.getpid()}_{secrets.token_hex(3)}"
    base = POSTGRES_ADMIN.rpartition("/")[0]

    async def create() -> None:
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        conn = await asyncpg.connect(f"{base}/{name}")
        await migrate(conn)
        await conn.close()

    async def drop() -> None:
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    asyncio.run(create())
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(drop())


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    """A pool on the session database, every table emptied first."""
    pool = await create_pool(database_url, max_size=4)
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'"
        )
        if tables:
            await conn.execute("TRUNCATE " + ", ".join(f'"{t["tablename"]}"' for t in tables) + " RESTART IDENTITY")
    yield pool
    await pool.close()


@pytest.fixture
def settings(redis_url: str, database_url: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own spool folder; Wyre enabled with a test token."""
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        port=0,
        spool_dir=str(tmp_path / "spool"),
        spool_replay_interval_seconds=0.1,
        redis_timeout_seconds=0.5,
        log_json=False,
        providers=ProviderSettings(wyre=WyreSettings(path_token=WYRE_TOKEN)),
    )


@pytest.fixture
def gateway(
    aiohttp_client: AiohttpClient, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> Callable[[Settings], Awaitable[TestClient[web.Request, web.Application]]]:
    """Factory: a real gateway app for the given settings, served on a local port."""

    async def start(settings: Settings) -> TestClient[web.Request, web.Application]:
        return await aiohttp_client(create_app(settings, metrics=Metrics()))

    return start


RunWorker = Callable[..., Awaitable[Metrics]]


@pytest.fixture
def run_worker() -> RunWorker:
    """Factory: run a real burst-mode worker (workers.consumer) until the queue is empty; returns its metrics."""

    async def run(settings: Settings, **overrides: Any) -> Metrics:
        metrics = Metrics()
        worker = build_worker(settings, metrics=metrics, burst=True, poll_delay=0, **overrides)
        try:
            await worker.main()
        finally:
            await worker.close()
        return metrics

    return run


def with_providers(settings: Settings, **providers: Any) -> Settings:
    """A copy of `settings` with some provider sections replaced."""
    return dataclasses.replace(settings, providers=dataclasses.replace(settings.providers, **providers))


def sample_value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value
