"""The in-process replica of the expected-order registry: what each gateway decides with.

`lookup` is a dict read (no I/O on the decision path). The replica subscribes to the orders
channel, loads the Redis hashes, then applies every announcement; announcements that arrive while
a load reads Redis are held and replayed on top of it. A full reload happens only when the replica
really missed something:

- an announcement skips a counter value (one was lost in between);
- the poll (every `poll_interval_s`) finds Redis's counter behind ours: Redis lost its state;
- the counter Redis had at one poll is still ahead of ours at the next: what announced it never
  came (a lost message, a counter moved without announcement such as `resync`).

A counter merely ahead of ours is normal under load (announcements in flight), so it is not a
reason to reload by itself. A registered order is thus seen within two poll intervals even when
pub/sub drops its message. The lag from publication to application is a metric.

The replica is a fast path only: consuming an order is one atomic script in Redis
(`shared.orders.confirm`), so a replica that has not yet heard of a confirmation cannot make an
order win twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis

from shared.channels import follow, pause, stop_requested, stop_tasks
from shared.db import Pool
from shared.errors import InputError
from shared.health import REDIS_ERRORS
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.orders import confirm, order_from_json, persist_confirmations, prune_expired
from shared.policy.model import ExpectedOrder

logger = logging.getLogger(__name__)

# Expired orders stay a day (their decisions say "order_expired"), then leave Redis and the
# replicas; Postgres keeps them. Every gateway prunes; the script makes that harmless.
RETAIN_EXPIRED_S = 24 * 3600.0
PRUNE_INTERVAL_S = 60.0
PERSIST_BATCH = 100  # confirmations written to Postgres between two checks for a stop
# How long `start` waits for the subscription before loading anyway (Redis down: the poll retries).
SUBSCRIBE_WAIT_S = 1.0

_POLL_ERRORS = (*REDIS_ERRORS, asyncpg.PostgresError, asyncpg.InterfaceError)


@dataclasses.dataclass(frozen=True, slots=True)
class _Change:
    """One announcement on the orders channel."""

    seq: int
    at: float
    op: str
    field: str
    message: dict[str, Any]


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
        self._awaited = 0  # Redis's counter at the previous poll: we should have reached it by now
        self._held: list[_Change] | None = None  # announcements arriving while a load reads Redis
        self._reloading = asyncio.Lock()
        self._next_prune = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

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
        """Subscribe, then load the registry (a failure is retried by the poll): subscribing
        first, nothing announced between the load and the subscription can be missed."""
        subscribed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._held = []  # what arrives before the load reads Redis is replayed on top of it
        self._tasks = [  # the follower, then the poll (`stop` stops them differently)
            asyncio.create_task(follow(self._redis, self._keys.orders_channel, self._apply, subscribed.set)),
            asyncio.create_task(self._poll()),
        ]
        with contextlib.suppress(TimeoutError):  # (not wait_for: on 3.11 it can swallow a cancellation)
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await subscribed.wait()
        with contextlib.suppress(*REDIS_ERRORS):
            await self.reload("start")  # (failed: announcements apply as they come, the poll reloads)

    async def stop(self) -> None:
        await stop_tasks(self._tasks[:1])  # the follower: a pub/sub read, cancelled
        await stop_tasks(self._tasks[1:], stopping=self._stopping)  # the poll: ends its round
        self._tasks = []

    async def reload(self, cause: str) -> None:
        """Replace the replica with the registry as Redis holds it now (one MULTI: consistent),
        plus the announcements that arrived meanwhile (their counters are past the snapshot's)."""
        async with self._reloading:  # two at once would install their snapshots in any order
            while True:
                if self._held is None:
                    self._held = []
                try:
                    seq, orders = await self._read()
                finally:
                    held, self._held = self._held, None
                self._orders, self._seq = orders, seq
                self._observe_reload(cause)
                # Announcements are delivered in counter order: a gap among the held ones means
                # one was lost after the snapshot, and only another load is sure to be complete.
                if all(self._change(change) for change in held if change.seq > self._seq):
                    return
                cause = "gap"

    async def _read(self) -> tuple[int, dict[tuple[str, str], ExpectedOrder]]:
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
        return int(seq or 0), orders

    def _parse(self, raw: bytes, *, confirmed: bool) -> ExpectedOrder | None:
        try:
            return order_from_json(raw, confirmed=confirmed)
        except (InputError, ValueError) as e:
            logger.warning("skipping an unreadable expected order in Redis: %s", e)
            return None

    async def _apply(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            change = _Change(int(message["seq"]), float(message["at"]), str(message["op"]), str(message["field"]),
                             message)  # fmt: skip
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable orders announcement")
            return
        if self._held is not None:  # a load is reading Redis: this goes on top of its snapshot
            self._held.append(change)
        elif not self._change(change):  # we missed one: only a reload is sure to be complete
            await self.reload("gap")

    def _change(self, change: _Change) -> bool:
        """Apply one announcement; False (and nothing applied) when one before it is missing.

        An announcement at or below our counter is applied all the same: after Redis lost its
        state the counter starts again from 0 (the poll then reloads), and the operations are
        idempotent."""
        if change.seq > self._seq + 1:
            return False
        message = change.message
        if change.op == "put":
            order = self._parse(str(message.get("order", "")).encode(), confirmed=False)
            if order is not None:
                known = self._orders.get((order.provider, order.order_ref))
                confirmed = known is not None and known.confirmed
                self._orders[(order.provider, order.order_ref)] = dataclasses.replace(order, confirmed=confirmed)
        elif change.op == "drop":
            for dropped in message.get("fields") or ():
                provider, _, order_ref = str(dropped).partition("\n")
                self._orders.pop((provider, order_ref), None)
        elif change.op == "confirm":
            provider, _, order_ref = change.field.partition("\n")
            order = self._orders.get((provider, order_ref))
            if order is not None:
                self._orders[(provider, order_ref)] = dataclasses.replace(order, confirmed=True)
        self._seq = max(self._seq, change.seq)
        if self._metrics is not None:
            self._metrics.orders_replica_lag_seconds.observe(max(0.0, time.time() - change.at))
            self._metrics.orders_replica_size.set(len(self._orders))
        return True

    def _observe_reload(self, cause: str) -> None:
        if self._metrics is not None:
            self._metrics.orders_replica_reloads.labels(cause).inc()
            self._metrics.orders_replica_size.set(len(self._orders))

    async def _poll(self) -> None:
        # Stopped between rounds (`stop`), not cancelled in one: see `stop_tasks`.
        while await pause(self._stopping, self._poll_interval_s):
            try:
                await self._check()
                if self._pool is not None:
                    await self._persist(self._pool)
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + PRUNE_INTERVAL_S
                    await prune_expired(self._redis, self._keys, older_than_s=RETAIN_EXPIRED_S)
            except _POLL_ERRORS as e:
                logger.warning("orders poll failed (retried next round): %s", e)
                self._observe_reload("failed")

    async def _persist(self, pool: Pool) -> None:
        # In batches, checking for a stop between them: under a stream of confirmations the
        # backlog of one interval is hundreds of queries, longer than a stop may wait.
        while not self._stopping.is_set() and not stop_requested():
            if await persist_confirmations(pool, self._redis, self._keys, limit=PERSIST_BATCH) < PERSIST_BATCH:
                return

    async def _check(self) -> None:
        """Reload when Redis's counter shows a change we will not hear of otherwise."""
        # Ours is read before asking: an announcement applied while the GET is answered may be
        # past the value it returns, which is not Redis going back.
        ours, awaited = self._seq, self._awaited
        seq = int(await cast(Awaitable[bytes | None], self._redis.get(self._keys.orders_seq)) or 0)
        if seq < ours or self._seq < awaited:
            await self.reload("poll")
        self._awaited = seq
