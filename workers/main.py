"""A worker process: the job consumer plus its own /metrics and /healthz on a side port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.config import Settings
from shared.metrics import Metrics
from shared.redis import create_redis
from workers.settings import build_worker

logger = logging.getLogger(__name__)

QUEUE_POLL_S = 5.0


async def observe_queue(redis: Redis, queue: str, metrics: Metrics) -> None:
    """Queue depth and the age of the oldest job that is due, for dashboards and alerts."""
    while True:
        try:
            now_ms = time.time() * 1000
            depth = await redis.zcard(queue)
            oldest = await redis.zrangebyscore(queue, "-inf", now_ms, start=0, num=1, withscores=True)
            metrics.queue_depth.labels(queue).set(depth)
            metrics.queue_oldest_age_seconds.labels(queue).set((now_ms - oldest[0][1]) / 1000 if oldest else 0)
        except RedisError as e:
            logger.warning("queue observation failed: %s", type(e).__name__)
        await asyncio.sleep(QUEUE_POLL_S)


@contextlib.asynccontextmanager
async def side_server(settings: Settings, metrics: Metrics) -> AsyncIterator[None]:
    async def metrics_view(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(metrics.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def health_view(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", health_view)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.worker_metrics_port, reuse_port=True)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


async def serve(settings: Settings, *, handle_signals: bool = True) -> None:
    """Run one worker until it is told to stop (SIGINT/SIGTERM, or cancellation)."""
    metrics = Metrics()
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    watcher = asyncio.create_task(observe_queue(redis, settings.queue_name, metrics))
    worker = build_worker(settings, metrics=metrics, handle_signals=handle_signals)
    try:
        async with side_server(settings, metrics):
            await worker.main()
    finally:
        watcher.cancel()
        await worker.close()
        await redis.aclose()
