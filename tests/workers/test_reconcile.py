"""`reconcile_tss_request` as arq runs it: Postgres being away is retried, not lost."""

from __future__ import annotations

import aiohttp
import pytest
from arq import Retry
from redis.asyncio import Redis

from shared.config import Settings
from shared.db import Pool
from shared.db import create_pool as create_pg_pool
from shared.keys import RedisKeys
from shared.metrics import Metrics
from tests.gateway.test_cobo_ucw import REQ, VAULT, WALLET, _settings
from tests.waas_standin import running_standin
from workers.deps import WorkerDeps
from workers.reconcile import build_client, reconcile_tss_request
from workers.settings import job_queue
from workers.writer import EventWriter


async def test_postgres_away_makes_the_job_retry_later(settings: Settings, db: Pool) -> None:
    async with running_standin() as standin, aiohttp.ClientSession() as session:
        configured = _settings(settings, standin)
        waas = configured.providers.cobo_waas
        assert waas is not None
        arq_redis = Redis.from_url(configured.redis_url)
        pool = await create_pg_pool(configured.database_url, max_size=1)
        await pool.close()  # Postgres "goes away": every acquire now fails
        keys, queue = RedisKeys(configured.key_prefix), job_queue(configured, arq_redis)
        deps = WorkerDeps(configured, pool, arq_redis, keys, Metrics(), EventWriter(pool), queue)
        ctx = {"deps": deps, "job_try": 3, "cobo_waas_client": build_client(session, waas, deps.metrics)}
        report = {"status": 190, "vault_id": VAULT, "received_at": 1.0}
        with pytest.raises(Retry) as caught:
            await reconcile_tss_request(ctx, WALLET, REQ, report, None)
        await arq_redis.aclose()
    assert caught.value.defer_score == 5000  # BACKOFF_S[2] seconds, in ms
    assert standin.calls == 0
