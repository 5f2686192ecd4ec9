"""The gateway application factory: reads like a table of contents of its resources."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from gateway.decisions import decision_memo
from gateway.health import service_health
from gateway.ingest import Ingestor
from gateway.keys import INGESTOR, METRICS, REDIS, REDIS_KEYS, SETTINGS
from gateway.live import live_state
from gateway.middleware import observe
from gateway.policy_test_pool import policy_tests
from gateway.process_metrics import side_port
from gateway.routes import setup_routes
from gateway.signer import answer_signer
from shared.config import Settings
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.queue import JobQueue
from shared.redis import create_redis
from shared.spool import Spool


def create_app(settings: Settings, *, metrics: Metrics | None = None) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[observe])
    app[SETTINGS] = settings
    app[METRICS] = metrics or Metrics()
    app[REDIS_KEYS] = RedisKeys(settings.key_prefix)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_ingestor)
    # >>> feature contexts (after _ingestor)
    app.cleanup_ctx.append(decision_memo)  # batched decide-once memo of the synchronous routes
    app.cleanup_ctx.append(answer_signer)  # Cobo TSS answers signed beside the event loop
    app.cleanup_ctx.append(side_port)  # per-process /metrics (docs/operations.md)
    app.cleanup_ctx.append(live_state)  # policy snapshot, freezes, expected-order replica
    app.cleanup_ctx.append(service_health)  # callgate_postgres_up/redis_up probes (not readiness conditions)
    app.cleanup_ctx.append(policy_tests)  # POST /admin/policy/test decides in a helper process
    # <<< feature contexts
    setup_routes(app, settings)
    return app


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[REDIS] = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    yield
    await app[REDIS].aclose()


async def _ingestor(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    queue = JobQueue(
        app[REDIS],
        queue_name=settings.queue_name,
        dedup_ttl_s=settings.dedup_ttl_seconds,
    )
    ingestor = Ingestor(queue, Spool(settings.spool_dir), app[REDIS_KEYS], app[METRICS])
    await ingestor.start(replay_interval_s=settings.spool_replay_interval_seconds)
    app[INGESTOR] = ingestor
    yield
    await ingestor.stop()
