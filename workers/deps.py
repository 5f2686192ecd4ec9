"""What every job gets: built once in the worker's `on_startup`, stored frozen in `ctx["deps"]`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from shared.config import Settings
from shared.db import Pool
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.queue import JobQueue
from workers.batching import ScriptBatch
from workers.writer import EventWriter

JobCtx = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    settings: Settings
    pool: Pool
    redis: Redis
    keys: RedisKeys
    metrics: Metrics
    writer: EventWriter
    queue: JobQueue  # every enqueue of a follow-up or next attempt goes through it
    # Script calls (velocity, breaker) of jobs that resume together share one pipeline; None: direct.
    scripts: ScriptBatch | None = None
    # Per-process runtimes features open at start-up (worker resources), by feature name, so
    # that follow-ups, which get these deps and no ctx, can reach them.
    runtimes: dict[str, Any] = field(default_factory=dict)


def deps(ctx: JobCtx) -> WorkerDeps:
    value = ctx["deps"]
    assert isinstance(value, WorkerDeps)  # set by on_startup; a programmer error otherwise
    return value
