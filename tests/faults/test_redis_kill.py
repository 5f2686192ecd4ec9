"""Redis SIGKILLed and restarted (same port, same AOF) under a steady stream of callbacks.

For every asynchronous provider route: each callback answered with the protocol's success ends
up in Postgres exactly once after the workers ran; during the outage the answers are success
(spooled) or the protocol's retry-me, never anything else; the gateway uses Redis again within
seconds of its return. Callbacks refused with retry-me are resent afterwards, as the providers do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from callgate.embedded import EmbeddedRedis
from gateway.app import create_app
from gateway.keys import METRICS
from shared.config import Settings
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.providers.cobo_ucw_store import add_wallet
from tests.conftest import AiohttpClient, RunWorker, sample_value
from tests.faults.routes import ASYNC_ROUTES, UCW_VAULT, UCW_WALLET, Answer, AsyncRoute, Callback, build_all
from tests.faults.routes import ucw_request_id as ucw_id
from tests.waas_standin import WaasStandin, running_standin

pytestmark = pytest.mark.fault
Client = TestClient[web.Request, web.Application]

CALLBACKS = 240  # built in advance; the stream stops at its deadline, what was not sent is not expected
SENDERS = 4
PACE_S = 0.05  # each sender waits this long between callbacks: a steady stream, not a flood
BEFORE_S, DOWN_S, AFTER_S = 0.5, 1.0, 1.5  # stream, then Redis killed, then restarted and streamed on
RECOVERY_LIMIT_S = 2.0


@pytest.fixture
async def standin() -> AsyncIterator[WaasStandin]:
    async with running_standin() as s:
        yield s


@dataclasses.dataclass
class Stream:
    """What each callback was answered, in order of completion, with the time it was sent."""

    answers: list[tuple[Callback, Answer, float]] = dataclasses.field(default_factory=list)
    stop_at: float = float("inf")

    async def send(self, client: Client, callbacks: list[Callback]) -> None:
        queue = list(reversed(callbacks))

        async def sender() -> None:
            while queue and time.monotonic() < self.stop_at:
                callback = queue.pop()
                started = time.monotonic()
                response = await client.post(callback.path, data=callback.body, headers=callback.headers)
                self.answers.append((callback, Answer(response.status, await response.read()), started))
                await asyncio.sleep(PACE_S)

        await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def _prepare(
    route: AsyncRoute, settings: Settings, db: asyncpg.Pool[asyncpg.Record], idents: list[str], standin: WaasStandin
) -> None:
    if route.provider != "cobo_ucw":
        return
    redis = Redis.from_url(settings.redis_url)
    async with db.acquire() as conn:
        await add_wallet(conn, redis, RedisKeys(settings.key_prefix), UCW_WALLET, UCW_VAULT)
    await redis.aclose()
    for ident in idents:
        standin.script(UCW_VAULT, ucw_id(ident), "Success")


async def _watch_spooling(metrics: Metrics, provider: str, sending: asyncio.Task[None]) -> list[float]:
    """When callbacks of `provider` were spooled (sampled every 10 ms while the stream runs)."""
    labels = {"provider": provider, "outcome": "spooled"}
    seen, times = 0.0, list[float]()
    while not sending.done():
        now = sample_value(metrics, "callgate_callbacks_total", labels)
        if now > seen:
            seen, times = now, [*times, time.monotonic()]
        await asyncio.sleep(0.01)
    return times


def _spool_empty(settings: Settings) -> bool:
    return not any(p.is_file() and p.stat().st_size for p in Path(settings.spool_dir).rglob("*"))


async def _spool_drained(settings: Settings, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_spool_empty, settings):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.timeout(60)
@pytest.mark.parametrize("route", ASYNC_ROUTES, ids=lambda r: r.name)
async def test_redis_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(
    route: AsyncRoute,
    private_redis: EmbeddedRedis,
    settings: Settings,
    db: asyncpg.Pool[asyncpg.Record],
    aiohttp_client: AiohttpClient,
    run_worker: RunWorker,
    standin: WaasStandin,
) -> None:
    base = secrets.randbelow(10**8) * 1000
    idents = [str(base + i) for i in range(CALLBACKS)]
    configured = route.configure(dataclasses.replace(settings, redis_url=private_redis.url), standin)
    await _prepare(route, configured, db, idents, standin)
    callbacks = await build_all(route, idents)
    metrics = Metrics()
    client = await aiohttp_client(create_app(configured, metrics=metrics))
    stream = Stream()
    sending = asyncio.create_task(stream.send(client, callbacks))
    spooled_at = asyncio.create_task(_watch_spooling(metrics, route.provider, sending))
    await asyncio.sleep(BEFORE_S)
    await asyncio.to_thread(private_redis.kill)
    killed_at = time.monotonic()
    await asyncio.sleep(DOWN_S)
    await asyncio.to_thread(private_redis.start)
    back_at = time.monotonic()
    stream.stop_at = back_at + AFTER_S
    await sending
    sent = [c for c, _, _ in stream.answers]
    assert len(sent) > 80 and stream.answers[-1][2] > back_at + 0.5  # the stream outlived the outage

    other = [(c.key, a) for c, a, _ in stream.answers if not (route.success(a) or route.retry(a))]
    assert other == []
    refused = [c for c, a, _ in stream.answers if route.retry(a)]
    assert refused or await spooled_at  # the outage was felt
    # Recovery: the last degraded answer (spooled or retry-me) came soon after Redis returned.
    degraded = [t for _, a, t in stream.answers if route.retry(a)] + await spooled_at
    assert min(degraded) >= killed_at - 0.5
    recovered_s = max(0.0, max(degraded) - back_at)
    assert recovered_s < RECOVERY_LIMIT_S
    # The provider resends what it was told to retry; now every answer is a success.
    for callback in refused:
        response = await client.post(callback.path, data=callback.body, headers=callback.headers)
        assert route.success(Answer(response.status, await response.read()))
    assert await _spool_drained(configured, 5.0)
    await run_worker(configured)

    rows = await db.fetch("SELECT idempotency_key FROM events WHERE provider = $1", route.provider)
    stored = Counter(r["idempotency_key"] for r in rows)
    acknowledged = {c.key for c in sent}
    assert {k for k, n in stored.items() if n > 1} == set()  # duplicated
    assert acknowledged - set(stored) == set()  # lost
    assert set(stored) - acknowledged == set()
    spooled = sample_value(
        client.app[METRICS], "callgate_callbacks_total", {"provider": route.provider, "outcome": "spooled"}
    )
    print(
        f"\n{route.name}: {len(sent)} callbacks, {int(spooled)} spooled, {len(refused)} retry-me, "
        f"recovered in {recovered_s:.2f}s, lost 0, duplicated 0"
    )
