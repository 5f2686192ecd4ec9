"""Service health: `callgate_postgres_up` and `callgate_redis_up` follow real services going away and
coming back, in the gateway and in a worker (a gateway without Postgres still acks and stays ready);
open dead letters are counted."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from callgate.demo import wyre_transaction
from callgate.embedded import EmbeddedRedis
from gateway.health import POSTGRES_HEALTH, REDIS_HEALTH
from gateway.keys import METRICS
from shared.config import Settings
from shared.db import Pool, create_pool
from shared.health import postgres_probe, redis_probe
from shared.jobs import DELIVER_NOTIFICATION, STORE_EVENT
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.notify.outbox import dead_letter
from tests.conftest import WYRE_TOKEN, sample_value
from tests.forwarder import Forwarder, forwarding
from tests.gateway.test_admin_orders import AUTH, admin, until
from workers.health import count_dead_letters, health_probes

Gateway = Callable[[Settings], Awaitable[TestClient[web.Request, web.Application]]]


def _through(settings: Settings, forwarder: Forwarder) -> Settings:
    parts = urlsplit(settings.database_url)
    netloc = f"{parts.username or ''}@127.0.0.1:{forwarder.port}" if parts.username else f"127.0.0.1:{forwarder.port}"
    return dataclasses.replace(settings, database_url=parts._replace(netloc=netloc).geturl())


def _target(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.database_url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


async def test_gateway_reports_postgres_down_and_up_and_keeps_acking(gateway: Gateway, settings: Settings) -> None:
    async with forwarding(*_target(settings)) as forwarder:
        client = await gateway(_through(settings, forwarder))
        probe = client.app[POSTGRES_HEALTH]

        def up() -> float:
            return sample_value(client.app[METRICS], "callgate_postgres_up")

        await until(lambda: up() == 1, within_s=5)
        await forwarder.cut()
        assert await probe.probe() is False and up() == 0
        # Postgres is off the ack path: the gateway stays ready and a callback is still acked.
        ready = await client.get("/readyz")
        assert ready.status == 200 and (await ready.json())["status"] == "ready"
        url = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
        acked = await client.post(url, data=wyre_transaction("PENDING", "TR_PGDOWN1"))
        assert acked.status == 200 and (await acked.json())["status"] == "accepted"
        await forwarder.restore()
        assert await probe.probe() is True and up() == 1


async def test_an_idle_gateway_reports_redis_down_and_up(gateway: Gateway, settings: Settings) -> None:
    parts = urlsplit(settings.redis_url)
    async with forwarding(parts.hostname or "127.0.0.1", parts.port or 6379) as forwarder:
        through = parts._replace(netloc=f"127.0.0.1:{forwarder.port}").geturl()
        client = await gateway(dataclasses.replace(settings, redis_url=through))
        probe = client.app[REDIS_HEALTH]

        def up() -> float:
            return sample_value(client.app[METRICS], "callgate_redis_up")

        await until(lambda: up() == 1, within_s=5)
        await forwarder.cut()
        assert await probe.probe() is False and up() == 0  # no callback needed to notice
        await forwarder.restore()
        assert await probe.probe() is True and up() == 1


async def test_a_full_redis_that_still_answers_ping_reads_as_down(tmp_path: Path) -> None:
    server = await asyncio.to_thread(EmbeddedRedis(tmp_path / "redis").start)
    client = Redis.from_url(server.url)
    try:
        metrics = Metrics()
        probe = redis_probe(client, "callgate:health:test", metrics.redis_up)
        assert await probe.probe() is True
        await client.config_set("maxmemory", 1)  # noeviction: every write is refused now
        assert await client.ping() is True
        assert await probe.probe() is False and sample_value(metrics, "callgate_redis_up") == 0
        await client.config_set("maxmemory", 0)
        assert await probe.probe() is True and await client.dbsize() == 0  # nothing left behind
    finally:
        await client.aclose()
        await asyncio.to_thread(server.stop)


async def test_a_postgres_that_hangs_reads_as_down_within_the_probe_timeout(settings: Settings) -> None:
    # A listener that accepts and never answers: the probe's own timeout, not asyncpg's 60 s.
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    metrics = Metrics()
    pool = await create_pool(f"postgresql://callgate@127.0.0.1:{port}/callgate", min_size=0, max_size=1)
    try:
        probe = postgres_probe(pool, metrics.postgres_up, timeout_s=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await probe.probe() is False
        assert loop.time() - started < 2.0
        assert sample_value(metrics, "callgate_postgres_up") == 0
    finally:
        pool.terminate()
        for writer in held:
            writer.transport.abort()
        server.close()


async def test_worker_probes_follow_postgres_and_redis(settings: Settings, redis: Redis) -> None:
    async with forwarding(*_target(settings)) as forwarder:
        metrics = Metrics()
        pool = await create_pool(_through(settings, forwarder).database_url, min_size=0, max_size=2)
        try:
            async with health_probes(pool, redis, RedisKeys(settings.key_prefix), metrics) as postgres:
                await until(lambda: sample_value(metrics, "callgate_postgres_up") == 1, within_s=5)
                await until(lambda: sample_value(metrics, "callgate_redis_up") == 1, within_s=5)
                await forwarder.cut()
                assert await postgres.probe() is False
                assert sample_value(metrics, "callgate_postgres_up") == 0
                await forwarder.restore()
                assert await postgres.probe() is True
        finally:
            pool.terminate()


async def test_open_dead_letters_are_counted_per_job_down_to_zero(settings: Settings, db: Pool) -> None:
    metrics = Metrics()
    async with db.acquire() as conn:
        for ref in ("n-1", "n-2"):
            await dead_letter(conn, DELIVER_NOTIFICATION, ref, [ref], "HTTP 500")
        await dead_letter(conn, STORE_EVENT, "wyre:k", [{}], "refused")

    def open_letters(job: str) -> float:
        return sample_value(metrics, "callgate_dead_letters_open", {"job": job})

    census = asyncio.create_task(count_dead_letters(db, metrics.dead_letters_open, interval_s=0.05))
    try:
        await until(lambda: open_letters(DELIVER_NOTIFICATION) == 2 and open_letters(STORE_EVENT) == 1, within_s=5)
        await db.execute("UPDATE dead_letters SET replayed_at = now() WHERE job = $1", STORE_EVENT)
        await until(lambda: open_letters(STORE_EVENT) == 0, within_s=5)  # replayed: 0, not a stale 1
        assert open_letters(DELIVER_NOTIFICATION) == 2
    finally:
        census.cancel()
        await asyncio.gather(census, return_exceptions=True)


async def test_an_admin_query_that_meets_no_postgres_says_so_at_once(gateway: Gateway, settings: Settings) -> None:
    async with forwarding(*_target(settings)) as forwarder:
        client = await gateway(admin(_through(settings, forwarder)))

        def up() -> float:
            return sample_value(client.app[METRICS], "callgate_postgres_up")

        await until(lambda: up() == 1, within_s=5)
        await forwarder.cut()
        # The admin API's own failed query moves the gauge (the probe runs only every 5 s).
        response = await client.get("/admin/subscribers", headers=AUTH)
        assert response.status == 503 and (await response.json())["error"] == "unavailable"
        assert up() == 0
        await forwarder.restore()
        assert (await client.get("/admin/subscribers", headers=AUTH)).status == 200
        assert up() == 1
