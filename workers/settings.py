"""The worker: its jobs, their retry policy, and the resources they share.

Jobs are registered here by name (the constants in shared.jobs), wrapped so that every job's
outcome and duration is measured in one place. They run on `workers.consumer.Consumer`, our
batched consumer of arq's queue layout (its docstring says why not arq's `Worker`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.db import create_pool
from shared.jobs import ASSESS_RISK, DELIVER_NOTIFICATION, RECONCILE_TSS_REQUEST, STORE_EVENT
from shared.keys import RedisKeys
from shared.logging import correlation_id
from shared.metrics import Metrics
from shared.queue import JobQueue
from shared.redis import create_redis
from workers.batching import ScriptBatch
from workers.consumer import Consumer, Hook, JobSpec, Retry
from workers.deliver import MAX_TRIES as DELIVER_MAX_TRIES
from workers.deliver import deliver_notification, notify_resources
from workers.deps import JobCtx, WorkerDeps
from workers.health import health_resources
from workers.reconcile import MAX_TRIES as RECONCILE_MAX_TRIES
from workers.reconcile import reconcile_tss_request, waas_resources
from workers.risk import MAX_TRIES as RISK_MAX_TRIES
from workers.risk import assess_risk, risk_resources
from workers.store import MAX_TRIES, store_event
from workers.writer import EventWriter

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

JobFunction = Callable[..., Awaitable[Any]]


def _instrumented(name: str, job: JobFunction, metrics: Metrics) -> JobFunction:
    @functools.wraps(job)
    async def run(ctx: JobCtx, *args: Any, **kwargs: Any) -> Any:
        # Each job runs in a task of its own, so the id set here marks only this job's log lines.
        if (request_id := _request_id(args)) is not None:
            correlation_id.set(request_id)
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await job(ctx, *args, **kwargs)
            outcome = "ok"
            return result
        except Retry:
            outcome = "retry"
            raise
        finally:
            metrics.jobs.labels(name, outcome).inc()
            metrics.job_seconds.labels(name).observe(time.perf_counter() - started)

    return run


def _request_id(args: tuple[Any, ...]) -> str | None:
    """The gateway request id of a job whose first argument is an event envelope (store_event)."""
    envelope = args[0] if args else None
    value = envelope.get("request_id") if isinstance(envelope, dict) else None
    return value if isinstance(value, str) else None


def job_functions(settings: Settings, metrics: Metrics) -> list[JobSpec]:
    timeout = settings.job_timeout_seconds
    table: list[tuple[str, JobFunction, int]] = [
        (STORE_EVENT, store_event, MAX_TRIES),
        # >>> jobs (name, function, max_tries)
        (RECONCILE_TSS_REQUEST, reconcile_tss_request, RECONCILE_MAX_TRIES),
        (DELIVER_NOTIFICATION, deliver_notification, DELIVER_MAX_TRIES),
        (ASSESS_RISK, assess_risk, RISK_MAX_TRIES),
        # <<< jobs
    ]
    return [JobSpec(n, _instrumented(n, f, metrics), t, timeout) for n, f, t in table]


def job_queue(settings: Settings, redis: Redis) -> JobQueue:
    """The producer every worker-side enqueue goes through (one round trip per loop iteration)."""
    return JobQueue(
        redis,
        queue_name=settings.queue_name,
        dedup_ttl_s=settings.dedup_ttl_seconds,
    )


def worker_hooks(settings: Settings, metrics: Metrics) -> tuple[Hook, Hook]:
    """`on_startup` and `on_shutdown`: the resources jobs share (arq's hook shape, so a stock arq
    `Worker` can run the same jobs: the wire-compatibility test does)."""

    async def on_startup(ctx: JobCtx) -> None:
        pool = await create_pool(settings.database_url, max_size=max(4, settings.worker_max_jobs // 10))
        writer = EventWriter(pool)
        writer.start()
        redis = ctx["redis"]
        keys = RedisKeys(settings.key_prefix)
        queue = job_queue(settings, redis)
        ctx["deps"] = WorkerDeps(settings, pool, redis, keys, metrics, writer, queue, scripts=ScriptBatch(redis))
        # >>> worker resources (async context managers: entered here, closed in on_shutdown)
        ctx["resources"] = resources = AsyncExitStack()
        await resources.enter_async_context(waas_resources(ctx))
        await resources.enter_async_context(notify_resources(ctx))
        await resources.enter_async_context(risk_resources(ctx))
        await resources.enter_async_context(health_resources(ctx))
        # <<< worker resources

    async def on_shutdown(ctx: JobCtx) -> None:
        if isinstance(resources := ctx.get("resources"), AsyncExitStack):
            await resources.aclose()
        worker_deps = ctx.get("deps")
        if isinstance(worker_deps, WorkerDeps):
            await worker_deps.writer.stop()
            await worker_deps.pool.close()

    return on_startup, on_shutdown


def build_worker(settings: Settings, *, metrics: Metrics | None = None, **overrides: Any) -> Consumer:
    """A consumer wired to callgate's jobs; tests pass `burst=True, poll_delay=0`.

    `overrides`: any `Consumer` option (`burst`, `poll_delay`, `max_jobs`, `ctx`, `handle_signals`).
    """
    metrics = metrics or Metrics()
    on_startup, on_shutdown = worker_hooks(settings, metrics)
    options: dict[str, Any] = {
        "queue_name": settings.queue_name,
        "functions": job_functions(settings, metrics),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_seconds,
        # Running jobs may finish for as long as they may run (docs/operations.md, shutdown).
        "shutdown_grace_s": settings.job_timeout_seconds,
        # Results are not read by anyone: none are written (arq's `keep_result=0`).
    }
    options.update(overrides)
    # A worker's Redis calls are not on an acknowledgement path: a slow claim (a long queue, a
    # busy Redis) is waited for longer than the gateway's fail-fast timeout.
    redis = create_redis(settings.redis_url, timeout_s=max(settings.redis_timeout_seconds, 10.0))
    return Consumer(redis, **options)
