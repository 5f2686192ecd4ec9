"""Typed application keys: every app-scoped resource a handler may read."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from redis.asyncio import Redis

from gateway.ingest import Ingestor
from shared.config import Settings
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.model import OrderView
from shared.policy.snapshot import PolicySnapshot

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
REDIS = web.AppKey("redis", Redis)
REDIS_KEYS = web.AppKey("redis_keys", RedisKeys)
INGESTOR = web.AppKey("ingestor", Ingestor)
# >>> provider and feature keys (one line each)


class PolicySource(Protocol):
    """Where handlers read the live policy snapshot (None: none loaded, decisions fail closed)."""

    @property
    def current(self) -> PolicySnapshot | None: ...


POLICY = web.AppKey("policy", PolicySource)  # the live policy snapshot (cobo_tss and other sync providers)


class OrderBook(OrderView, Protocol):
    """The expected-order registry as handlers see it: an in-process replica plus an atomic confirm."""

    async def confirm(self, provider: str, order_ref: str) -> bool:
        """Mark an order consumed by a second confirmation; False when it already was."""
        ...


ORDERS = web.AppKey("orders", OrderBook)  # expected orders (UU Wallet, ChainUp second confirmations)
# <<< provider and feature keys
