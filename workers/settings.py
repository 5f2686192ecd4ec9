"""The arq worker: its jobs, their retry policy, and the resources they share.

Jobs are registered here by name (the constants in shared.jobs), wrapped so that every job's
outcome and duration is measured in one place.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from arq import Retry, Worker
from arq.connections import RedisSettings
from arq.worker import Function, func

from shared.config import Settings
from shared.db import create_pool
from shared.jobs import ASSESS_RISK, DELIVER_NOTIFICATION, RECONCILE_TSS_REQUEST, STORE_EVENT
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.queue import deserialize_job, serialize_job
from workers.deliver import MAX_TRIES as DELIVER_MAX_TRIES
from workers.deliver import deliver_notification, notify_resources
from workers.deps import JobCtx, WorkerDeps
from workers.reconcile import MAX_TRIES as RECONCILE_MAX_TRIES
from workers.reconcile import reconcile_tss_request, waas_resources
from workers.risk import MAX_TRIES as RISK_MAX_TRIES
from workers.risk import assess_risk, risk_resources
from workers.store import MAX_TRIES, store_event
from workers.writer import EventWriter

logger = logging.getLogger(__name__)

JobFunction = Callable[..., Awaitable[Any]]


def _instrumented(name: str, job: JobFunction, metrics: Metrics) -> JobFunction:
    @functools.wraps(job)
    async def run(ctx: JobCtx, *args: Any, **kwargs: Any) -> Any:
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


def job_functions(settings: Settings, metrics: Metrics) -> list[Function]:
    timeout = settings.job_timeout_seconds
    table: list[tuple[str, JobFunction, int]] = [
        (STORE_EVENT, store_event, MAX_TRIES),
        # >>> jobs (name, function, max_tries)
        (RECONCILE_TSS_REQUEST, reconcile_tss_request, RECONCILE_MAX_TRIES),
        (DELIVER_NOTIFICATION, deliver_notification, DELIVER_MAX_TRIES),
        (ASSESS_RISK, assess_risk, RISK_MAX_TRIES),
        # <<< jobs
    ]
    return [
        func(
            _instrumented(n, f, metrics),  # type: ignore[arg-type]  # arq types coroutines narrowly
            name=n,
            max_tries=t,
            timeout=timeout,
        )
        for n, f, t in table
    ]


def build_worker(settings: Settings, *, metrics: Metrics | None = None, **overrides: Any) -> Worker:
    """An arq Worker wired to callgate's jobs; tests pass `burst=True, poll_delay=0`."""
    metrics = metrics or Metrics()

    async def on_startup(ctx: JobCtx) -> None:
        pool = await create_pool(settings.database_url, max_size=max(4, settings.worker_max_jobs // 10))
        writer = EventWriter(pool)
        writer.start()
        ctx["deps"] = WorkerDeps(settings, pool, ctx["redis"], RedisKeys(settings.key_prefix), metrics, writer)
        # >>> worker resources (async context managers: entered here, closed in on_shutdown)
        ctx["resources"] = resources = AsyncExitStack()
        await resources.enter_async_context(waas_resources(ctx))
        await resources.enter_async_context(notify_resources(ctx))
        await resources.enter_async_context(risk_resources(ctx))
        # <<< worker resources

    async def on_shutdown(ctx: JobCtx) -> None:
        if isinstance(resources := ctx.get("resources"), AsyncExitStack):
            await resources.aclose()
        worker_deps = ctx.get("deps")
        if isinstance(worker_deps, WorkerDeps):
            await worker_deps.writer.stop()
            await worker_deps.pool.close()

    options: dict[str, Any] = {
        "functions": job_functions(settings, metrics),
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": settings.queue_name,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_serializer": serialize_job,
        "job_deserializer": deserialize_job,
        "max_jobs": settings.worker_max_jobs,
        "poll_delay": settings.worker_poll_delay_seconds,
        "job_timeout": settings.job_timeout_seconds,
        # Results are not read by anyone; not writing them saves a Redis write per job.
        "keep_result": 0,
        "handle_signals": False,
    }
    options.update(overrides)
    return Worker(**options)
