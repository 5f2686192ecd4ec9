"""`callgate dev`: the whole stack in one process, on embedded servers when none are running.

When `REDIS_URL` / `DATABASE_URL` are unset and nothing answers on the default ports (or with
`--embedded`), a private valkey-server and PostgreSQL are started in the data folder. Dev-only
secrets (a Wyre path token when no provider is configured) are generated once and kept in
`<data>/dev.env`, which `callgate demo` also reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path

import asyncpg
from aiohttp import web

from callgate.embedded import EmbeddedPostgres, EmbeddedRedis, port_answers
from gateway.app import create_app
from gateway.server import GatewayRunner
from shared.config import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Settings
from shared.db import create_pool, migrate
from shared.keys import RedisKeys
from shared.policy.store import active_version, publish
from shared.redis import create_redis
from workers.main import serve as serve_worker

logger = logging.getLogger(__name__)

DEV_ENV_FILE = "dev.env"


def load_env_file(path: Path, env: MutableMapping[str, str]) -> None:
    """KEY=VALUE lines into `env`, without overriding what is already set."""
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            env.setdefault(key.strip(), value.strip())


def _dev_secrets(data: Path, env: MutableMapping[str, str]) -> None:
    path = data / DEV_ENV_FILE
    load_env_file(path, env)
    if not any(k.startswith("CALLGATE_") and k.endswith(("_TOKEN", "_KEYS", "_KEY_FILE")) for k in env):
        token = secrets.token_urlsafe(24)
        data.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(f"CALLGATE_WYRE_PATH_TOKEN={token}\n")
        path.chmod(0o600)
        env["CALLGATE_WYRE_PATH_TOKEN"] = token


Server = EmbeddedRedis | EmbeddedPostgres


@contextlib.contextmanager
def services(data: Path, env: MutableMapping[str, str], *, embedded: bool) -> Iterator[None]:
    """Point REDIS_URL/DATABASE_URL at running servers, starting private ones where needed."""
    started: list[Server] = []

    def provide(variable: str, default_port: int, default_url: str, make: Callable[[], Server]) -> None:
        if env.get(variable):
            return
        if not embedded and port_answers("127.0.0.1", default_port):
            env[variable] = default_url
            return
        server = make().start()
        started.append(server)
        env[variable] = server.url

    redis_port = int(env.get("CALLGATE_DEV_REDIS_PORT", "16379"))
    postgres_port = int(env.get("CALLGATE_DEV_POSTGRES_PORT", "15432"))
    try:
        provide("REDIS_URL", 6379, DEFAULT_REDIS_URL, lambda: EmbeddedRedis(data / "redis", port=redis_port))
        provide(
            "DATABASE_URL",
            5432,
            DEFAULT_DATABASE_URL,
            lambda: EmbeddedPostgres(data / "postgres", port=postgres_port),
        )
        yield
    finally:
        for server in reversed(started):
            server.stop()


async def ensure_database(dsn: str) -> None:
    """Create the target database on a shared server if it does not exist yet."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        base, _, name = dsn.rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


EXAMPLE_POLICY = Path(__file__).parents[1] / "deploy" / "policy.example.yaml"


async def ensure_policy(settings: Settings) -> int | None:
    """Publish the example policy when none is active, so synchronous providers answer from a
    real document (and say why) instead of failing closed with `no_policy`."""
    if not EXAMPLE_POLICY.exists():
        return None
    pool = await create_pool(settings.database_url, max_size=1)
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    try:
        if await active_version(pool) is not None:
            return None
        text = EXAMPLE_POLICY.read_text()
        published = await publish(pool, redis, RedisKeys(settings.key_prefix), text, published_by="callgate dev")
        return published.policy.version
    finally:
        await redis.aclose()
        await pool.close()


async def run_stack(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Gateway and one worker in this event loop until SIGINT/SIGTERM."""
    await ensure_database(settings.database_url)
    version = await ensure_policy(settings)
    if version is not None:
        logger.info("published %s as policy version %d (dev default)", EXAMPLE_POLICY.name, version)
    runner = GatewayRunner(create_app(settings), settings)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    worker = asyncio.create_task(serve_worker(settings, handle_signals=False))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await runner.cleanup()


def banner(settings: Settings, data: Path) -> str:
    base = f"http://{settings.host}:{settings.port}"
    lines = [
        "callgate dev is running",
        f"  gateway   {base}   (metrics {base}/metrics)",
        f"  worker    metrics on port {settings.worker_metrics_port}",
        f"  redis     {settings.redis_url}",
        f"  postgres  {settings.database_url}",
        f"  providers {', '.join(settings.enabled_providers()) or 'none'}",
        f"  dev secrets in {data / DEV_ENV_FILE}",
    ]
    wyre = settings.providers.wyre
    if wyre is not None:
        lines += [
            "try:",
            f"  curl -s -X POST {base}/wyre/v3/wallet-callbacks/{wyre.path_token} \\",
            "    -H 'Content-Type: application/json' \\",
            '    -d \'{"id":"TR_TRY1","status":"PENDING","createdAt":1613027293110,"source":"bitcoin:EXTERNAL",'
            '"dest":"wallet:WA_1","currency":"BTC","amount":0.5}\'',
            "  callgate demo        # signed samples of every enabled provider",
        ]
    lines.append("Ctrl-C stops everything (embedded servers included).")
    return "\n".join(lines)


def dev(data: Path, *, embedded: bool) -> None:
    env: dict[str, str] = dict(os.environ)
    _dev_secrets(data, env)
    env.setdefault("CALLGATE_SPOOL_DIR", str(data / "spool"))
    env.setdefault("CALLGATE_LOG_JSON", "false")
    with services(data, env, embedded=embedded):
        settings = Settings.from_env(env)
        ready = asyncio.Event()

        async def main() -> None:
            task = asyncio.create_task(run_stack(settings, ready=ready))
            await ready.wait()
            print(banner(settings, data), flush=True)
            await task

        asyncio.run(main())
