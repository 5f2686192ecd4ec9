"""The one module that knows arq's wire format (producer side).

arq's `enqueue_job` costs three round trips (WATCH/EXISTS, then MULTI/PSETEX/ZADD/EXEC). The
gateway instead runs one Lua script per *batch* of callbacks that, for each one, atomically sets
the dedup marker and writes an arq-compatible job (the same key, serialisation and queue score
arq itself writes), so ordinary arq workers read what it enqueued. Claim and done are one atomic
step: there is no window in which a crash leaves a claim without its job.

If arq is ever replaced, this module, `workers/settings.py` and `workers/main.py` are what change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from shared.jobs import EventEnvelope

# arq's own key layout (arq.constants); fixed by arq, not configurable.
ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
ARQ_RETRY_PREFIX = "arq:retry:"

# KEYS: queue, then (dedup key, job key) per item.
# ARGV: dedup ttl ms, job ttl ms, score, then (job id, job bytes) per item.
# Returns one integer per item: 1 enqueued, 0 duplicate.
_ENQUEUE_BATCH_LUA = """
local out = {}
local n = 0
for i = 2, #KEYS, 2 do
  n = n + 1
  local a = 4 + (n - 1) * 2
  if redis.call('SET', KEYS[i], ARGV[a], 'NX', 'PX', ARGV[1]) then
    redis.call('PSETEX', KEYS[i + 1], ARGV[2], ARGV[a + 1])
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[a])
    out[n] = 1
  else
    out[n] = 0
  end
end
return out
"""


def serialize_job(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def deserialize_job(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("job is not a JSON object")
    return value


def encode_job(function: str, args: Sequence[Any], *, enqueue_ms: int) -> bytes:
    """An arq job as arq's own `serialize_job` lays it out: t, f, a, k, et."""
    return serialize_job({"t": 1, "f": function, "a": list(args), "k": {}, "et": enqueue_ms})


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One job ready to go: what the ingest batch and the spool both carry."""

    dedup_key: str
    job_id: str
    job: bytes

    def to_record(self) -> bytes:
        return orjson.dumps([self.dedup_key, self.job_id, self.job.decode()])

    @classmethod
    def from_record(cls, raw: bytes) -> QueueItem:
        dedup_key, job_id, job = orjson.loads(raw)
        return cls(str(dedup_key), str(job_id), str(job).encode())


def event_item(envelope: EventEnvelope, function: str, dedup_key: str) -> QueueItem:
    now_ms = int(time.time() * 1000)
    return QueueItem(dedup_key, envelope.job_id, encode_job(function, [envelope.to_json()], enqueue_ms=now_ms))


class JobQueue:
    """Producer side of the queue: batched dedup+enqueue and the synchronous-answer memo."""

    def __init__(self, redis: Redis, *, queue_name: str, dedup_ttl_s: int, memo_ttl_s: int) -> None:
        self._redis = redis
        self._queue = queue_name
        self._dedup_ttl_ms = dedup_ttl_s * 1000
        # Jobs must outlive any worker outage we want to survive; arq's 1-day default does not.
        self._job_ttl_ms = dedup_ttl_s * 1000
        self._memo_ttl_ms = memo_ttl_s * 1000
        self._enqueue = redis.register_script(_ENQUEUE_BATCH_LUA)

    @property
    def queue_name(self) -> str:
        return self._queue

    async def enqueue_batch(self, items: Sequence[QueueItem]) -> list[bool]:
        """Dedup and enqueue in one round trip; True per item enqueued, False per duplicate."""
        keys: list[str] = [self._queue]
        args: list[Any] = [self._dedup_ttl_ms, self._job_ttl_ms, int(time.time() * 1000)]
        for item in items:
            keys += (item.dedup_key, ARQ_JOB_PREFIX + item.job_id)
            args += (item.job_id, item.job)
        result = await self._enqueue(keys=keys, args=args)
        return [bool(flag) for flag in result]

    async def depth(self) -> int:
        return int(await self._redis.zcard(self._queue))
