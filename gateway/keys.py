"""Typed application keys: every app-scoped resource a handler may read."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from gateway.ingest import Ingestor
from shared.config import Settings
from shared.keys import RedisKeys
from shared.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
REDIS = web.AppKey("redis", Redis)
REDIS_KEYS = web.AppKey("redis_keys", RedisKeys)
INGESTOR = web.AppKey("ingestor", Ingestor)
# >>> provider and feature keys (one line each)
# <<< provider and feature keys
