"""Best-effort Redis GETs of concurrent requests, batched: one MGET per event-loop iteration.

A route that reads a key per request pays a full redis-py command each time (connection
checkout, its health check, a round trip); the reads of one loop iteration are independent, so
they share one MGET the way the ingestor's callbacks share one script call. Best effort: a read
that Redis cannot serve resolves to None, the same as an absent key, for callers that answer
with what they know (the UCW route's `result`) rather than fail.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

MAX_BATCH = 256


class BatchedReads:
    """`get(key)` returns a future of the value; the keys asked for in one iteration share an MGET."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pending: list[tuple[str, asyncio.Future[bytes | None]]] = []
        self._scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()

    def get(self, key: str) -> asyncio.Future[bytes | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        self._pending.append((key, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._start, context=contextvars.Context())  # not the first request's log context
        return future

    async def stop(self) -> None:
        """Let the reads on the wire finish (aiohttp calls this after in-flight handlers ended)."""
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _start(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        for start in range(0, len(batch), MAX_BATCH):
            task = asyncio.create_task(self._fetch(batch[start : start + MAX_BATCH]))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _fetch(self, batch: list[tuple[str, asyncio.Future[bytes | None]]]) -> None:
        try:
            values: list[bytes | None] = await self._redis.mget([key for key, _ in batch])
        except (RedisError, OSError) as e:
            logger.info("batched read of %d keys failed (%s): answered as absent", len(batch), type(e).__name__)
            values = [None] * len(batch)
        for (_, future), value in zip(batch, values, strict=True):
            if not future.done():  # its request may have been cancelled meanwhile
                future.set_result(value)
