"""The one module that knows arq's wire format (producer side).

arq's `enqueue_job` costs three round trips (WATCH/EXISTS, then MULTI/PSETEX/ZADD/EXEC). The
gateway instead runs one Lua script per *batch* of callbacks that, for each one, atomically sets
the dedup marker and writes an arq-compatible job (the same key, serialisation and queue score
arq itself writes), so ordinary arq workers read what it enqueued. Claim and done are one atomic
step: there is no window in which a crash leaves a claim without its job.

Jobs enqueued by jobs (follow-ups, retries of deliveries, re-checks) and by the CLI and console go
through `JobQueue.enqueue`: arq's `enqueue_job` semantics (a no-op while a job of that id or its
result exists; `at` defers it) in one script call, and the calls made in one event-loop iteration
share that call. The consumer side of the same layout is `workers/consumer.py`.

If arq is ever replaced, this module and `workers/consumer.py` are what change.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from redis.asyncio import Redis

from shared.jobs import EventEnvelope

# arq's own key layout (arq.constants); fixed by arq, not configurable.
ARQ_JOB_PREFIX = "arq:job:"
ARQ_RESULT_PREFIX = "arq:result:"
ARQ_IN_PROGRESS_PREFIX = "arq:in-progress:"
ARQ_RETRY_PREFIX = "arq:retry:"
ARQ_ABORT_SET = "arq:abort"
ARQ_HEALTH_CHECK_SUFFIX = ":health-check"

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

# arq's `enqueue_job`, for many jobs at once. KEYS: queue, then (job key, result key) per job.
# ARGV: (job id, score ms, job ttl ms, job bytes) per job. Returns one integer per job: 1 enqueued,
# 0 a job (or the result) of that id exists, so nothing was written (arq's no-op).
_ENQUEUE_JOBS_LUA = """
local out = {}
for i = 2, #KEYS, 2 do
  local a = (i - 2) * 2
  if redis.call('EXISTS', KEYS[i], KEYS[i + 1]) == 0 then
    redis.call('PSETEX', KEYS[i], ARGV[a + 3], ARGV[a + 4])
    redis.call('ZADD', KEYS[1], ARGV[a + 2], ARGV[a + 1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
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


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue by function name, with a stable id (arq's `_job_id`), now or at `at`."""

    function: str
    args: tuple[Any, ...]
    job_id: str
    at: float | None = None  # epoch seconds; None: now


# arq's default lifetime of a job past its due time (arq.constants.expires_extra_ms).
ARQ_EXPIRES_EXTRA_S = 86_400


async def enqueue_jobs(
    redis: Redis, queue_name: str, jobs: Sequence[NewJob], *, job_ttl_s: int = ARQ_EXPIRES_EXTRA_S
) -> list[bool]:
    """arq's `enqueue_job` for many jobs in one script call; True per job written, False where a
    job (or result) of that id exists. Each job key lives `job_ttl_s` past its due time."""
    if not jobs:
        return []
    now_ms = int(time.time() * 1000)
    keys: list[str] = [queue_name]
    args: list[Any] = []
    for job in jobs:
        score = now_ms if job.at is None else int(job.at * 1000)
        body = serialize_job({"t": None, "f": job.function, "a": list(job.args), "k": {}, "et": now_ms})
        keys += (ARQ_JOB_PREFIX + job.job_id, ARQ_RESULT_PREFIX + job.job_id)
        args += (job.job_id, score, max(score - now_ms, 0) + job_ttl_s * 1000, body)
    result = await redis.register_script(_ENQUEUE_JOBS_LUA)(keys=keys, args=args)
    return [bool(flag) for flag in result]


T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Calls made in one event-loop iteration are handed to `flush` together, as one list.

    Many jobs that resume together (a group commit landing, a claimed batch) each make "their"
    Redis call; this makes it one round trip for all of them. Each caller gets its own results,
    or the batch's exception.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[list[R]]], *, window_s: float = 0.0) -> None:
        self._flush_items = flush
        # 0: the calls of this event-loop iteration; more: also those of the next `window_s`
        # (calls that follow network answers arriving a moment apart, where latency matters less).
        self._window_s = window_s
        self._items: list[T] = []
        self._future: asyncio.Future[list[R]] | None = None

    async def __call__(self, items: Sequence[T]) -> list[R]:
        if not items:
            return []
        if self._future is None:
            loop = asyncio.get_running_loop()
            self._future = loop.create_future()
            # A fresh context: the batch serves every caller, so its log lines must not carry the
            # correlation id of whichever job happened to call first.
            context = contextvars.Context()
            if self._window_s > 0:
                loop.call_later(self._window_s, self._start, context=context)
            else:
                loop.call_soon(self._start, context=context)
        future, start = self._future, len(self._items)
        self._items.extend(items)
        # Shielded: a caller cancelled while waiting does not cancel the others' round trip.
        results = await asyncio.shield(future)
        return results[start : start + len(items)]

    def _start(self) -> None:
        items, future = self._items, self._future
        self._items, self._future = [], None
        assert future is not None
        task = asyncio.get_running_loop().create_task(self._run(items, future))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # the future carries errors

    async def _run(self, items: list[T], future: asyncio.Future[list[R]]) -> None:
        try:
            results = await self._flush_items(items)
        except BaseException as e:  # every waiter sees the failure (a RedisError, a cancellation)
            if not future.done():
                future.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        if not future.done():
            future.set_result(results)


class JobQueue:
    """Producer side of the queue: batched dedup+enqueue and follow-up jobs (the synchronous-answer
    memo is `gateway.decisions`)."""

    def __init__(self, redis: Redis, *, queue_name: str, dedup_ttl_s: int) -> None:
        self._redis = redis
        self._queue = queue_name
        # Dedup markers and jobs live as long: jobs must outlive any worker outage we want to
        # survive (arq's 1-day default does not), as the markers that refuse their duplicates do.
        self._ttl_s = dedup_ttl_s
        self._enqueue = redis.register_script(_ENQUEUE_BATCH_LUA)
        self._coalesced: Coalescer[NewJob, bool] = Coalescer(self._write_jobs)

    @property
    def queue_name(self) -> str:
        return self._queue

    async def enqueue_batch(self, items: Sequence[QueueItem]) -> list[bool]:
        """Dedup and enqueue in one round trip; True per item enqueued, False per duplicate."""
        keys: list[str] = [self._queue]
        args: list[Any] = [self._ttl_s * 1000, self._ttl_s * 1000, int(time.time() * 1000)]
        for item in items:
            keys += (item.dedup_key, ARQ_JOB_PREFIX + item.job_id)
            args += (item.job_id, item.job)
        result = await self._enqueue(keys=keys, args=args)
        return [bool(flag) for flag in result]

    async def enqueue(self, function: str, *args: Any, job_id: str, at: float | None = None) -> bool:
        """arq's `enqueue_job(function, *args, _job_id=job_id, _defer_until=at)` in one round trip
        (shared with every other enqueue of this event-loop iteration). False: the id exists."""
        (added,) = await self.enqueue_many([NewJob(function, args, job_id, at)])
        return added

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Enqueue jobs (each a no-op if its id exists); True per job written.

        Calls made in the same event-loop iteration are sent as one script call: many jobs finishing
        together (a claimed batch) enqueue their follow-ups in one round trip, not one each.
        """
        return await self._coalesced(jobs)

    async def _write_jobs(self, jobs: list[NewJob]) -> list[bool]:
        return await enqueue_jobs(self._redis, self._queue, jobs, job_ttl_s=self._ttl_s)

    async def depth(self) -> int:
        return int(await self._redis.zcard(self._queue))
