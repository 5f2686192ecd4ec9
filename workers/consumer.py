"""Our own consumer of arq's queue layout: jobs claimed and finished in batches.

Why not arq's `Worker`: profiled under a drain, it spent ~6 Redis round trips on every job (WATCH,
EXISTS, ZSCORE, MULTI/PSETEX/EXEC to claim it; GET + INCR/EXPIRE to read it; a finish pipeline),
each 100-200 µs of CPU on the worker and on Redis, and two workers reading the same head of the
queue (`ZRANGEBYSCORE` from offset 0) fought over the same ids with WATCH, so a second worker
added nothing. Here one script call claims up to N ready jobs atomically, skipping those in
progress elsewhere, so any number of workers share the queue without conflicts, and one
transaction per loop iteration finishes or reschedules every job that ended since the last.

The keys and their meaning are arq's, so either side can be swapped for arq's own:
- the queue zset (`settings.queue_name`, score = due time in ms); a job stays in it while it runs;
- `arq:job:<id>`: the job (JSON, arq's `{t, f, a, k, et}`), with a TTL;
- `arq:in-progress:<id>`: set with a TTL of the job timeout + 10 s while a worker runs the job, so
  the jobs of a worker that was killed run again elsewhere once it expires (at least once);
- `arq:retry:<id>`: the try counter (incremented at every claim), `ctx["job_try"]`;
- `<queue>:health-check`: what `arq --check` reads; `arq:abort` is cleared as arq clears it
  (aborting jobs is not supported, as it was not enabled before).

Semantics kept from arq: a job is a coroutine `f(ctx, *args, **kwargs)`; `Retry(defer=...)`
reschedules it (a try spent); any other exception, or its timeout, fails it for good (the job
functions catch what they want retried); more than `max_tries` claims fail it without running;
a job cancelled by shutdown runs again. Burst mode (tests) stops once the queue is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import arq
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.queue import (
    ARQ_ABORT_SET,
    ARQ_HEALTH_CHECK_SUFFIX,
    ARQ_IN_PROGRESS_PREFIX,
    ARQ_JOB_PREFIX,
    ARQ_RETRY_PREFIX,
    deserialize_job,
)

logger = logging.getLogger(__name__)

# What a job raises to run again later (`Retry(defer=seconds)`): arq's own class, so the same job
# functions run under a stock arq `Worker` too. Jobs import it from here, keeping arq behind this
# module.
Retry = arq.Retry

JobCoroutine = Callable[..., Awaitable[Any]]
Hook = Callable[[dict[str, Any]], Awaitable[None]]

# arq keeps a try counter this long after its last claim (arq.worker: `expire(retry_key, 88400)`).
RETRY_KEY_TTL_S = 88400
# A claim looks at no more than this many due ids (those in progress elsewhere are skipped), so
# that one script call stays short even when thousands of jobs run on other workers.
CLAIM_SCAN_CAP = 5000
REDIS_ERROR_PAUSE_S = 1.0
_JOB_KEYS = (ARQ_IN_PROGRESS_PREFIX, ARQ_RETRY_PREFIX, ARQ_JOB_PREFIX)

# KEYS: queue. ARGV: now ms, jobs wanted, in-progress ttl ms, scan cap.
# Returns a flat list, per claimed job: id, job bytes ('' when the job key is gone), try, score.
# Key names are built here, as arq builds them (arq's layout is not Redis Cluster friendly anyway).
_CLAIM_LUA = """
local queue, now, want = KEYS[1], ARGV[1], tonumber(ARGV[2])
local ttl, cap = tonumber(ARGV[3]), tonumber(ARGV[4])
local chunk = math.max(want * 2, 64)
local out, claimed, offset = {}, 0, 0
while claimed < want and offset < cap do
  local ids = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'WITHSCORES', 'LIMIT', offset, chunk)
  if #ids == 0 then break end
  for i = 1, #ids, 2 do
    local id = ids[i]
    local progress = 'arq:in-progress:' .. id
    if redis.call('EXISTS', progress) == 0 then
      redis.call('PSETEX', progress, ttl, '1')
      local retry = 'arq:retry:' .. id
      local try = redis.call('INCR', retry)
      redis.call('EXPIRE', retry, ARGV[5])
      out[#out + 1] = id
      out[#out + 1] = redis.call('GET', 'arq:job:' .. id) or ''
      out[#out + 1] = try
      out[#out + 1] = ids[i + 1]
      claimed = claimed + 1
      if claimed >= want then break end
    end
  end
  offset = offset + chunk
end
return out
"""


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A registered job: its name (the `f` of arq's payload), coroutine, tries and time limit."""

    name: str
    coroutine: JobCoroutine
    max_tries: int
    timeout_s: float


@dataclass(frozen=True, slots=True)
class _Claim:
    job_id: str
    raw: bytes
    job_try: int
    score: int


@dataclass(frozen=True, slots=True)
class _Ended:
    """How a job left this worker: done (delete it), at (reschedule to ms), or released (run again)."""

    job_id: str
    done: bool
    at_ms: int | None = None


class Consumer:
    """Claims ready jobs in batches, runs up to `max_jobs` at once, finishes them in batches."""

    def __init__(
        self,
        redis: Redis,
        *,
        queue_name: str,
        functions: Sequence[JobSpec],
        ctx: dict[str, Any] | None = None,
        on_startup: Hook | None = None,
        on_shutdown: Hook | None = None,
        max_jobs: int = 50,
        poll_delay: float = 0.05,
        burst: bool = False,
        shutdown_grace_s: float = 60.0,
        health_check_interval_s: float = 3600.0,
        handle_signals: bool = False,
    ) -> None:
        self.redis = redis
        self.queue_name = queue_name
        self.functions: Mapping[str, JobSpec] = {f.name: f for f in functions}
        self.ctx: dict[str, Any] = ctx or {}
        self._on_startup, self._on_shutdown = on_startup, on_shutdown
        self.max_jobs = max_jobs
        self.poll_delay_s = poll_delay
        self.burst = burst
        self._grace_s = shutdown_grace_s
        self._health_interval_s = health_check_interval_s
        self._handle_signals = handle_signals
        self.health_check_key = queue_name + ARQ_HEALTH_CHECK_SUFFIX
        # arq's rule: a worker's claim outlives its longest job by 10 s.
        self.in_progress_ttl_ms = int((max((f.timeout_s for f in functions), default=0) + 10) * 1000)
        self._claim_script = redis.register_script(_CLAIM_LUA)
        # Claim when a quarter of the slots are free (or none is busy): bigger claims make bigger
        # group commits and pipelines downstream, instead of one job per finished job.
        self._min_claim = max(1, max_jobs // 4)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._ended: list[_Ended] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._last_health = 0.0
        self.jobs_complete = self.jobs_retried = self.jobs_failed = 0

    # -- lifetime ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running jobs get the grace period to finish, then are handed back."""
        self._stopping = True
        self._wake.set()

    async def main(self) -> None:
        """Start up, run until stopped (or, in burst mode, until the queue is empty), shut down."""
        self.ctx["redis"] = self.redis
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        if self._on_startup is not None:
            await self._on_startup(self.ctx)
        grace = self._grace_s
        try:
            await self._loop()
        except asyncio.CancelledError:
            grace = 0.0  # cancelled (not stopped): hand running jobs back at once, as arq does
            raise
        finally:
            await self._drain(grace)
            with contextlib.suppress(RedisError, OSError):
                await self.redis.delete(self.health_check_key)
            if self._on_shutdown is not None:
                await self._on_shutdown(self.ctx)

    async def close(self) -> None:
        await self.redis.aclose()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                claimed = await self._iteration()
            except (RedisError, OSError) as e:
                # Redis away: jobs keep their in-progress markers; finishes wait in `_ended`.
                logger.warning("worker loop: redis unavailable (%s)", type(e).__name__)
                await self._pause(REDIS_ERROR_PAUSE_S)
                continue
            if self.burst and not (claimed or self._running or self._ended) and await self._queue_empty():
                return
            if claimed and len(self._running) < self.max_jobs:
                continue  # more may be ready right now
            await self._pause(self.poll_delay_s)

    async def _queue_empty(self) -> bool:
        # arq's burst rule: deferred jobs (retries) count too, so a burst run waits for them.
        return int(await self.redis.zcard(self.queue_name)) == 0

    async def _pause(self, seconds: float) -> None:
        # A job ending frees a slot (and may have enqueued a follow-up that is due now).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _iteration(self) -> int:
        await self._finish_ended()
        free = self.max_jobs - len(self._running)
        claims = await self._claim(free) if free >= self._min_claim or (free and not self._running) else []
        for claim in claims:
            self._running[claim.job_id] = task = asyncio.create_task(self._run(claim), name=f"job {claim.job_id}")
            task.add_done_callback(functools.partial(self._forget, claim.job_id))
        await self._record_health()
        return len(claims)

    def _forget(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._running.get(job_id) is task:
            del self._running[job_id]
        self._wake.set()

    async def _drain(self, grace_s: float) -> None:
        """Wait for running jobs (up to `grace_s`), hand back the rest, finish them all."""
        tasks = list(self._running.values())
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        late = [t for t in tasks if not t.done()]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self._finish_ended()

    # -- claim and finish ----------------------------------------------------------------------

    async def _claim(self, want: int) -> list[_Claim]:
        now_ms = int(time.time() * 1000)
        args = [now_ms, want, self.in_progress_ttl_ms, CLAIM_SCAN_CAP, RETRY_KEY_TTL_S]
        flat = await self._claim_script(keys=[self.queue_name], args=args)
        return [
            _Claim(_text(flat[i]), bytes(flat[i + 1]), int(flat[i + 2]), int(float(flat[i + 3])))
            for i in range(0, len(flat), 4)
        ]

    async def _finish_ended(self) -> None:
        """One transaction for every job that ended since the last call (arq's `finish_job`)."""
        if not self._ended:
            return
        ended, self._ended = self._ended, []
        try:
            async with self.redis.pipeline(transaction=True) as tr:
                for e in ended:
                    if e.done:
                        tr.delete(*(prefix + e.job_id for prefix in _JOB_KEYS))
                        tr.zrem(self.queue_name, e.job_id)
                        tr.zrem(ARQ_ABORT_SET, e.job_id)
                    else:
                        if e.at_ms is not None:
                            tr.zadd(self.queue_name, {e.job_id: e.at_ms}, xx=True)
                        tr.delete(ARQ_IN_PROGRESS_PREFIX + e.job_id)
                await asyncio.shield(tr.execute())
        except BaseException:
            # Not written: keep them for the next iteration (their in-progress markers still hold).
            self._ended[:0] = ended
            raise

    async def _record_health(self) -> None:
        now = time.time()
        if now - self._last_health < self._health_interval_s:
            return
        self._last_health = now
        queued = await self.redis.zcard(self.queue_name)
        info = (
            f"{dt.datetime.now():%b-%d %H:%M:%S} j_complete={self.jobs_complete} j_failed={self.jobs_failed} "
            f"j_retried={self.jobs_retried} j_ongoing={len(self._running)} queued={queued}"
        )
        await self.redis.psetex(self.health_check_key, int((self._health_interval_s + 1) * 1000), info.encode())

    # -- one job -------------------------------------------------------------------------------

    async def _run(self, claim: _Claim) -> None:
        ended = _Ended(claim.job_id, done=True)
        try:
            ended = await self._execute(claim)
        except asyncio.CancelledError:
            # Shutdown after the grace period: the job runs again (here or on another worker).
            self.jobs_retried += 1
            ended = _Ended(claim.job_id, done=False)
        finally:
            self._ended.append(ended)
            self._wake.set()

    async def _execute(self, claim: _Claim) -> _Ended:
        job_id = claim.job_id
        if not claim.raw:
            logger.warning("job %s expired", job_id)
            return self._failed(job_id)
        try:
            data = deserialize_job(claim.raw)
            name, args, kwargs = str(data["f"]), tuple(data["a"]), dict(data["k"])
            enqueue_ms, enqueued_try = int(data["et"]), data.get("t")
        except (KeyError, TypeError, ValueError):
            logger.exception("deserializing job %s failed", job_id)
            return self._failed(job_id)
        spec = self.functions.get(name)
        if spec is None:
            logger.warning("job %s, function %r not found", job_id, name)
            return self._failed(job_id)
        job_try = claim.job_try
        if isinstance(enqueued_try, int) and enqueued_try > job_try:
            job_try = enqueued_try  # re-enqueued with `_job_try` (arq's rule)
            await self.redis.setex(ARQ_RETRY_PREFIX + job_id, RETRY_KEY_TTL_S, str(job_try))
        if job_try > spec.max_tries:
            logger.warning("job %s:%s max retries %d exceeded", job_id, name, spec.max_tries)
            return self._failed(job_id)
        ctx = {
            **self.ctx,
            "job_id": job_id,
            "job_try": job_try,
            "enqueue_time": dt.datetime.fromtimestamp(enqueue_ms / 1000, dt.UTC),
            "score": claim.score,
        }
        try:
            async with asyncio.timeout(spec.timeout_s):
                await spec.coroutine(ctx, *args, **kwargs)
        except Retry as e:
            self.jobs_retried += 1
            at_ms = None if not e.defer_score else int(time.time() * 1000) + e.defer_score
            return _Ended(job_id, done=False, at_ms=at_ms)
        except Exception as e:  # the job runner: a failed job is logged and finished, never fatal
            logger.exception("job %s:%s failed, %s: %s", job_id, name, type(e).__name__, e)
            return self._failed(job_id)
        self.jobs_complete += 1
        return _Ended(job_id, done=True)

    def _failed(self, job_id: str) -> _Ended:
        self.jobs_failed += 1
        return _Ended(job_id, done=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
