"""The ack path: batched dedup+enqueue into Redis, with a durable local spool behind it.

Callbacks submitted in the same event-loop iteration share one Redis round trip
(`gateway.batching.LoopBatcher`, as the synchronous routes' memo does), and at most MAX_IN_FLIGHT
batches are on the wire at once; callbacks arriving meanwhile wait for the next one, so under
load one round trip carries many callbacks (group commit) and when idle a callback goes out at
once.
If Redis fails, the whole batch is appended to the spool and fsynced before anyone is answered;
a background task replays the spool through the same dedup script when Redis is back, so a
callback accepted twice (once spooled, once queued) still yields one job.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from redis.exceptions import RedisError

from gateway.batching import LoopBatcher
from shared.errors import QueueUnavailable, SpoolError
from shared.jobs import STORE_EVENT, EventEnvelope, key_hash
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.queue import JobQueue, QueueItem, event_item
from shared.spool import Spool, read_records

logger = logging.getLogger(__name__)

REPLAY_CHUNK = 256


class Outcome(str, enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    SPOOLED = "spooled"


class Ingestor:
    """Hands accepted callbacks to the queue; `submit` returns only once they are durable."""

    def __init__(self, queue: JobQueue, spool: Spool, keys: RedisKeys, metrics: Metrics) -> None:
        self._queue = queue
        self._spool = spool
        self._keys = keys
        self._metrics = metrics
        self._batcher: LoopBatcher[QueueItem, Outcome] = LoopBatcher(self._send)
        self._spool_lock = asyncio.Lock()
        self._replayer: asyncio.Task[None] | None = None

    @property
    def queue(self) -> JobQueue:
        return self._queue

    def item_for(self, envelope: EventEnvelope, function: str = STORE_EVENT) -> QueueItem:
        dedup = self._keys.dedup(envelope.provider, key_hash(envelope.provider, envelope.idempotency_key))
        return event_item(envelope, function, dedup)

    async def submit(self, envelope: EventEnvelope, function: str = STORE_EVENT) -> Outcome:
        """Durably record a callback; raises QueueUnavailable when neither Redis nor the spool can."""
        return await self.submit_item(self.item_for(envelope, function))

    async def submit_item(self, item: QueueItem) -> Outcome:
        return await self._batcher.submit(item)

    async def start(self, *, replay_interval_s: float) -> None:
        self._replayer = asyncio.create_task(self._replay_loop(replay_interval_s), name="spool-replay")

    async def stop(self) -> None:
        """Finish the batches on the wire (aiohttp calls this after in-flight handlers ended)."""
        await self._batcher.stop()
        if self._replayer is not None:
            self._replayer.cancel()
            await asyncio.gather(self._replayer, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self._spool.close)

    async def _send(self, items: Sequence[QueueItem]) -> list[Outcome]:
        try:
            return await self._enqueue(items)
        except (RedisError, OSError) as e:
            logger.warning("redis unavailable (%s): spooling %d callbacks", type(e).__name__, len(items))
            self._metrics.redis_up.set(0)
            return await self._spool_batch(items)

    async def _enqueue(self, items: Sequence[QueueItem]) -> list[Outcome]:
        started = time.perf_counter()
        flags = await self._queue.enqueue_batch(items)
        self._metrics.enqueue_seconds.observe(time.perf_counter() - started)
        self._metrics.enqueue_batch_size.observe(len(items))
        self._metrics.redis_up.set(1)
        return [Outcome.ACCEPTED if flag else Outcome.DUPLICATE for flag in flags]

    async def _spool_batch(self, items: Sequence[QueueItem]) -> list[Outcome]:
        records = [item.to_record() for item in items]
        loop = asyncio.get_running_loop()
        try:
            async with self._spool_lock:
                await loop.run_in_executor(None, self._spool.append, records)
        except SpoolError as e:
            logger.error("spool unavailable too: answering unavailable to %d callbacks (%s)", len(items), e)
            raise QueueUnavailable(str(e)) from e  # the batcher raises it (a copy each) in every caller
        self._metrics.spool_records.labels("written").inc(len(records))
        return [Outcome.SPOOLED for _ in items]

    async def _replay_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.replay_spool()
            except (RedisError, OSError) as e:
                logger.info("spool replay postponed: %s", type(e).__name__)

    async def replay_spool(self) -> int:
        """Move every spooled callback into the queue; returns how many were replayed."""
        loop = asyncio.get_running_loop()
        async with self._spool_lock:
            await loop.run_in_executor(None, self._spool.rotate)
        replayed = 0
        while (path := await loop.run_in_executor(None, self._spool.claim)) is not None:
            try:
                replayed += await self._replay_file(path)
            except BaseException:
                await loop.run_in_executor(None, self._spool.release, path)
                raise
            path.unlink()
        self._metrics.spool_bytes.set(await loop.run_in_executor(None, self._spool.pending_bytes))
        return replayed

    async def _replay_file(self, path: Path) -> int:
        records = await asyncio.get_running_loop().run_in_executor(None, lambda: list(read_records(path)))
        for start in range(0, len(records), REPLAY_CHUNK):
            chunk = [QueueItem.from_record(r) for r in records[start : start + REPLAY_CHUNK]]
            await self._queue.enqueue_batch(chunk)
            self._metrics.redis_up.set(1)
        if records:
            logger.info("spool %s replayed: %d callbacks", path.name, len(records))
            self._metrics.spool_records.labels("replayed").inc(len(records))
        return len(records)
