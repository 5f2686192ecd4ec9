"""Best-effort Redis GETs of concurrent requests, batched: one MGET per event-loop iteration.

A route that reads a key per request pays a full redis-py command each time (connection
checkout, its health check, a round trip); the reads of one loop iteration are independent, so
they share one MGET (`gateway.batching.LoopBatcher`) the way the ingestor's callbacks share one
script call. Best effort: a read that Redis cannot serve resolves to None, the same as an absent
key, for callers that answer with what they know (the UCW route's `result`) rather than fail.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.batching import LoopBatcher

logger = logging.getLogger(__name__)


class BatchedReads:
    """`get(key)`: the value, or None (absent, or Redis unavailable); one MGET per batch of keys."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._batcher: LoopBatcher[str, bytes | None] = LoopBatcher(self._mget)

    async def get(self, key: str) -> bytes | None:
        return await self._batcher.submit(key)

    async def stop(self) -> None:
        """Let the reads on the wire finish (aiohttp calls this after in-flight handlers ended)."""
        await self._batcher.stop()

    async def _mget(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            values: list[bytes | None] = await self._redis.mget(keys)
        except (RedisError, OSError) as e:
            logger.info("batched read of %d keys failed (%s): answered as absent", len(keys), type(e).__name__)
            return [None] * len(keys)
        return values
