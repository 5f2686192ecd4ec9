"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from gateway.keys import METRICS, REDIS, SETTINGS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis answers; the spool keeps the ack path up without it, so say which."""
    try:
        await asyncio.wait_for(request.app[REDIS].ping(), timeout=1.0)
        redis_ok = True
    except (RedisError, OSError, TimeoutError):
        redis_ok = False
    body = {"redis": redis_ok, "providers": request.app[SETTINGS].enabled_providers()}
    return web.json_response({"status": "ready" if redis_ok else "degraded", **body}, status=200 if redis_ok else 503)


async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=payload)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response
