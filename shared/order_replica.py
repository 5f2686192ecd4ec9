"""The in-process replica of the expected-order registry: what each gateway decides with.

`lookup` is a dict read (no I/O on the decision path). The replica loads the Redis hashes at
start, applies every announcement on the orders channel, and compares the change counter every
`poll_interval_s`: a gap in the announced counters, or a counter ahead of ours, means a missed
announcement and triggers a full reload, so a registered order is seen within about a second even
when pub/sub drops a message. The lag from publication to application is a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable
from typing import cast

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.channels import follow, stop_tasks
from shared.db import Pool
from shared.errors import InputError
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.orders import confirm, order_from_json, persist_confirmations, prune_expired
from shared.policy.model import ExpectedOrder

logger = logging.getLogger(__name__)

# Expired orders stay a day (their decisions say "order_expired"), then leave Redis and the
# replicas; Postgres keeps them. Every gateway prunes; the script makes that harmless.
RETAIN_EXPIRED_S = 24 * 3600.0
PRUNE_INTERVAL_S = 60.0

_REDIS_ERRORS = (RedisError, OSError, TimeoutError)
_POLL_ERRORS = (*_REDIS_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError)


class OrderReplica:
    """Expected orders of every provider, kept current from Redis; implements `OrderView`."""

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        *,
        pool: Pool | None = None,
        poll_interval_s: float = 0.5,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis, self._keys, self._pool = redis, keys, pool
        self._poll_interval_s = poll_interval_s
        self._metrics = metrics
        self._orders: dict[tuple[str, str], ExpectedOrder] = {}
        self._seq = 0
        self._next_prune = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def lookup(self, provider: str, order_ref: str) -> ExpectedOrder | None:
        return self._orders.get((provider, order_ref))

    def __len__(self) -> int:
        return len(self._orders)

    async def confirm(self, provider: str, order_ref: str) -> bool:
        """Mark an order consumed (atomic across gateways); False when it already was."""
        won = await confirm(self._redis, self._keys, provider, order_ref)
        order = self._orders.get((provider, order_ref))
        if order is not None:  # ours at once; the announcement tells the other gateways
            self._orders[(provider, order_ref)] = dataclasses.replace(order, confirmed=True)
        return won

    async def start(self) -> None:
        """Load the registry (a failure is retried by the poll), then follow its changes."""
        with contextlib.suppress(*_REDIS_ERRORS):
            await self.reload("start")
        self._tasks = [
            asyncio.create_task(follow(self._redis, self._keys.orders_channel, self._apply)),
            asyncio.create_task(self._poll()),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    async def reload(self, cause: str) -> None:
        """Replace the replica with the registry as Redis holds it now (one MULTI: consistent)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._keys.orders_seq)
            pipe.hgetall(self._keys.orders)
            pipe.hgetall(self._keys.orders_confirmed)
            seq, raw_orders, confirmed = await pipe.execute()
        orders: dict[tuple[str, str], ExpectedOrder] = {}
        for field, raw in raw_orders.items():
            order = self._parse(raw, confirmed=field in confirmed)
            if order is not None:
                orders[(order.provider, order.order_ref)] = order
        self._orders, self._seq = orders, int(seq or 0)
        self._observe_reload(cause)

    def _parse(self, raw: bytes, *, confirmed: bool) -> ExpectedOrder | None:
        try:
            return order_from_json(raw, confirmed=confirmed)
        except (InputError, ValueError) as e:
            logger.warning("skipping an unreadable expected order in Redis: %s", e)
            return None

    async def _apply(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            seq, at, op, field = int(message["seq"]), float(message["at"]), message["op"], str(message["field"])
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable orders announcement")
            return
        if seq > self._seq + 1:  # we missed one: only a reload is sure to be complete
            await self.reload("gap")
        elif op == "put":
            order = self._parse(str(message.get("order", "")).encode(), confirmed=False)
            if order is not None:
                known = self._orders.get((order.provider, order.order_ref))
                confirmed = known is not None and known.confirmed
                self._orders[(order.provider, order.order_ref)] = dataclasses.replace(order, confirmed=confirmed)
        elif op == "drop":
            for dropped in message.get("fields") or ():
                provider, _, order_ref = str(dropped).partition("\n")
                self._orders.pop((provider, order_ref), None)
        elif op == "confirm":
            provider, _, order_ref = field.partition("\n")
            order = self._orders.get((provider, order_ref))
            if order is not None:
                self._orders[(provider, order_ref)] = dataclasses.replace(order, confirmed=True)
        self._seq = max(self._seq, seq)
        if self._metrics is not None:
            self._metrics.orders_replica_lag_seconds.observe(max(0.0, time.time() - at))
            self._metrics.orders_replica_size.set(len(self._orders))

    def _observe_reload(self, cause: str) -> None:
        if self._metrics is not None:
            self._metrics.orders_replica_reloads.labels(cause).inc()
            self._metrics.orders_replica_size.set(len(self._orders))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                seq = await cast(Awaitable[bytes | None], self._redis.get(self._keys.orders_seq))
                if int(seq or 0) != self._seq:
                    await self.reload("poll")
                if self._pool is not None:
                    await persist_confirmations(self._pool, self._redis, self._keys)
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + PRUNE_INTERVAL_S
                    await prune_expired(self._redis, self._keys, older_than_s=RETAIN_EXPIRED_S)
            except _POLL_ERRORS as e:
                logger.warning("orders poll failed (retried next round): %s", e)
                self._observe_reload("failed")
