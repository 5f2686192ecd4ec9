"""Synchronous answers, once per key: the decide-once calls of one event-loop iteration share one
Redis script call.

A synchronous route (Cobo TSS check, ChainUp co-signer and confirmations, UU Wallet second
confirmation) may answer only what is durably remembered: the first answer for a memo key is
stored, with its audit job enqueued in the same atomic step, and every later request with that
key gets the stored answer back. One script call per request cost those routes a redis-py
command each (connection checkout, a health read on every pooled connection, a round trip);
here, as in `gateway.ingest`, the calls made in one loop iteration go out together, at most
MAX_IN_FLIGHT batches at once, so under load one round trip carries many answers.

Within a batch the script handles the items in order, so of two concurrent requests with the
same key the first one's answer wins and the second one gets that memo back, exactly as if
they had been two script calls. A peek (read the memo, write nothing) rides in the same batch.

When Redis fails, every caller of the batch gets the error: nothing was promised, and the
routes answer their protocol's refusal (fail closed, counted as `unavailable`). An answer is
never given without its memo.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.batching import LoopBatcher
from gateway.keys import METRICS, REDIS, SETTINGS
from shared.metrics import Metrics
from shared.queue import ARQ_JOB_PREFIX, QueueItem

logger = logging.getLogger(__name__)


# KEYS: queue, then (memo key, job key) per item; a peek repeats its memo key as the job key.
# ARGV: memo ttl ms, job ttl ms, score, then (memo value, job id, job) per item; a peek has an
# empty job id. Returns per item the earlier memo, or 0 when there was none (a decision was
# recorded with its audit job; a peek found nothing).
_DECIDE_BATCH_LUA = """
local out = {}
local n = 0
for i = 2, #KEYS, 2 do
  n = n + 1
  local a = 4 + (n - 1) * 3
  local prev = redis.call('GET', KEYS[i])
  if prev then
    out[n] = prev
  else
    if ARGV[a + 1] ~= '' then
      redis.call('SET', KEYS[i], ARGV[a], 'PX', ARGV[1])
      redis.call('PSETEX', KEYS[i + 1], ARGV[2], ARGV[a + 2])
      redis.call('ZADD', KEYS[1], ARGV[3], ARGV[a + 1])
    end
    out[n] = 0
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class _Call:
    memo_key: str
    memo_value: bytes
    audit: QueueItem | None  # None: a peek


class DecisionMemo:
    """The synchronous-answer memo: `decide_once` and `peek`, batched per event-loop iteration."""

    def __init__(self, redis: Redis, *, queue_name: str, memo_ttl_s: int, job_ttl_s: int, metrics: Metrics) -> None:
        self._script = redis.register_script(_DECIDE_BATCH_LUA)
        self._queue = queue_name
        self._memo_ttl_ms = memo_ttl_s * 1000
        self._job_ttl_ms = job_ttl_s * 1000
        self._metrics = metrics
        self._batcher = LoopBatcher(self._send)

    async def decide_once(self, memo_key: str, memo_value: bytes, audit: QueueItem) -> bytes | None:
        """Record an answer and enqueue its audit job unless `memo_key` holds one: None when ours
        was recorded, else the earlier memo. Raises RedisError/OSError when Redis fails."""
        return await self._batcher.submit(_Call(memo_key, memo_value, audit))

    async def peek(self, memo_key: str) -> bytes | None:
        """The memo stored under `memo_key`, if any (raises RedisError/OSError)."""
        return await self._batcher.submit(_Call(memo_key, b"", None))

    async def stop(self) -> None:
        await self._batcher.stop()

    async def _send(self, calls: Sequence[_Call]) -> list[bytes | None]:
        keys: list[str] = [self._queue]
        args: list[Any] = [self._memo_ttl_ms, self._job_ttl_ms, int(time.time() * 1000)]
        for call in calls:
            if call.audit is None:
                keys += (call.memo_key, call.memo_key)
                args += (b"", "", b"")
            else:
                keys += (call.memo_key, ARQ_JOB_PREFIX + call.audit.job_id)
                args += (call.memo_value, call.audit.job_id, call.audit.job)
        try:
            results = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as e:
            logger.warning("redis unavailable (%s): %d synchronous answers refused", type(e).__name__, len(calls))
            self._metrics.redis_up.set(0)
            raise
        self._metrics.redis_up.set(1)
        if not isinstance(results, list):
            raise RedisError(f"decision script answered {type(results).__name__}")
        return [bytes(r) if isinstance(r, bytes) else None for r in results]


DECISIONS = web.AppKey("decisions", DecisionMemo)


async def decision_memo(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context (after `_ingestor`): the batched decision memo of the synchronous routes."""
    settings = app[SETTINGS]
    app[DECISIONS] = DecisionMemo(
        app[REDIS],
        queue_name=settings.queue_name,
        memo_ttl_s=settings.memo_ttl_seconds,
        # The audit job lives as long as any other job (JobQueue's job TTL is the dedup TTL).
        job_ttl_s=settings.dedup_ttl_seconds,
        metrics=app[METRICS],
    )
    yield
    await app[DECISIONS].stop()
