"""Cobo UCW TSS callbacks and WaaS webhooks end to end: gateway → Redis → burst worker → WaaS stand-in → Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from callgate.embedded import EmbeddedRedis, free_port
from callgate.ucw_demo import send_cobo_ucw
from gateway.keys import METRICS
from gateway.live import UCW_WALLETS
from shared.config import CoboUcwSettings, CoboWaasSettings, Settings
from shared.db import Pool
from shared.keys import RedisKeys
from shared.providers.cobo_ucw_store import add_wallet
from shared.waas.cobo_auth import load_api_secret, load_public_key
from shared.waas.cobo_client import ClientOptions
from tests.conftest import RunWorker, sample_value, with_providers
from tests.shared.test_policy_store import until
from tests.waas_standin import WaasStandin, running_standin

Client = TestClient[web.Request, web.Application]
Gateway = Callable[[Settings], Awaitable[Client]]
Db = Pool

WALLET = "9b2f7a4e-3c1d-4e5f-8a6b-7c8d9e0f1a2b"
VAULT = "4f2a7c1e-0000-4000-8000-000000000001"
REQ = "20240711114129000132315000003970"
API_KEY = "ucw-test-key-0123456789abcdef"
FAST = ClientOptions(timeout_s=0.5, max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02, rate_per_s=1000)


@pytest.fixture
async def standin() -> AsyncIterator[WaasStandin]:
    async with running_standin() as s:
        yield s


def _settings(settings: Settings, standin: WaasStandin, **ucw: Any) -> Settings:
    waas = CoboWaasSettings(
        base_url=standin.base_url,
        api_secret=load_api_secret(standin.api_secret_hex),
        response_public_key=load_public_key(standin.env_public_hex),
        client=FAST,
    )
    policy = {"recheck_backoff_s": (0.05, 0.1), "horizon_s": 60, **ucw}
    return with_providers(settings, cobo_waas=waas, cobo_ucw=CoboUcwSettings(api_keys=(API_KEY,), **policy))


async def _register(db: Db, redis: Redis, settings: Settings, wallet: str = WALLET) -> None:
    async with db.acquire() as conn:
        await add_wallet(conn, redis, RedisKeys(settings.key_prefix), wallet, VAULT)


Start = Callable[..., Awaitable[tuple[Settings, Client]]]


@pytest.fixture
def start(gateway: Gateway, settings: Settings, db: Db, redis: Redis, standin: WaasStandin) -> Start:
    """Factory: UCW + WaaS enabled against the stand-in, the test wallet registered, WaaS scripted."""

    async def run(*statuses: str, **policy: Any) -> tuple[Settings, Client]:
        configured = _settings(settings, standin, **policy)
        await _register(db, redis, configured)
        if statuses:
            standin.script(VAULT, REQ, *statuses)
        return configured, await gateway(configured)

    return run


async def _report(
    client: Client, status: object = 190, *, wallet: str = WALLET, key: str | None = API_KEY, **body: Any
) -> ClientResponse:
    headers = {"X-API-Key": key} if key is not None else {}
    payload = {"tss_request_id": REQ, "status": status, **body}
    return await client.post(f"/api/v1/wallets/{wallet}/tss/callback", json=payload, headers=headers)


async def _row(db: Db) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM tss_requests WHERE tss_request_id = $1", REQ)
    assert row is not None
    return row


def _callbacks(client: Client, outcome: str) -> float:
    return sample_value(client.app[METRICS], "callgate_callbacks_total", {"provider": "cobo_ucw", "outcome": outcome})


async def test_report_is_reconciled_and_the_answer_shows_the_waas_state(
    start: Start, run_worker: RunWorker, db: Db, standin: WaasStandin
) -> None:
    settings, client = await start("Success")
    first = await _report(client)
    assert first.status == 200
    assert await first.json() == {
        "result": {"tss_request_id": REQ, "status": "", "waas_status_snapshot": ""},
        "success": True,
        "suggestion": "",
        "message": "",
        "meta": None,
    }
    metrics = await run_worker(settings)
    row = await _row(db)
    assert (row["reported_status"], row["waas_status"], row["waas_terminal"]) == (190, "Success", True)
    assert (row["disagreement"], row["attempts"], row["next_check_at"], row["vault_id"]) == (False, 1, None, VAULT)
    assert row["waas_snapshot"]["status"] == "Success"
    # A repeat is a duplicate (no second reconciliation) answered with the row as now known.
    again = await _report(client)
    result = (await again.json())["result"]
    assert result["status"] == "Success" and orjson.loads(result["waas_status_snapshot"])["tss_request_id"] == REQ
    assert _callbacks(client, "accepted") == 1 and _callbacks(client, "duplicate") == 1
    assert standin.calls == 1
    assert sample_value(metrics, "callgate_waas_calls_total", {"provider": "cobo_waas", "outcome": "ok"}) == 1
    assert sample_value(metrics, "callgate_reconcile_lag_seconds_count", {"provider": "cobo_ucw"}) == 1
    assert sample_value(metrics, "callgate_reconcile_pending", {"provider": "cobo_ucw"}) == 0


async def test_report_contradicting_waas_is_flagged_and_waas_wins(
    start: Start, run_worker: RunWorker, db: Db, standin: WaasStandin
) -> None:
    # The client says Completed; WaaS is still generating, then fails.
    settings, client = await start("KeyGenerating", "KeyGeneratingFailed")
    assert (await _report(client, 190)).status == 200
    metrics = await run_worker(settings)
    row = await _row(db)
    assert (row["reported_status"], row["waas_status"], row["disagreement"]) == (190, "KeyGeneratingFailed", True)
    assert row["attempts"] == 2 and standin.calls == 2
    assert sample_value(metrics, "callgate_reconcile_disagreements_total", {"provider": "cobo_ucw"}) == 1


async def test_progress_is_rechecked_until_terminal_and_new_statuses_are_new_reports(
    start: Start, run_worker: RunWorker, db: Db, standin: WaasStandin
) -> None:
    settings, client = await start("PendingKeyHolderConfirmation", "MPCProcessing", "KeyGenerating", "Success")
    assert (await _report(client, 130)).status == 200
    assert (await _report(client, 190)).status == 200
    await run_worker(settings)
    row = await _row(db)
    assert (row["reported_status"], row["waas_status"], row["disagreement"]) == (190, "Success", False)
    assert _callbacks(client, "accepted") == 2
    # Two reports each read WaaS once; one re-check chain survives and runs to Success.
    assert standin.calls == 4 and row["next_check_at"] is None


async def test_waas_down_then_up(start: Start, run_worker: RunWorker, db: Db, standin: WaasStandin) -> None:
    settings, client = await start("Success")
    standin.fail("500", times=2)  # both attempts of the first read
    assert (await _report(client)).status == 200
    metrics = await run_worker(settings)
    row = await _row(db)
    assert (row["waas_status"], row["attempts"], row["last_error"]) == ("Success", 2, None)
    assert sample_value(metrics, "callgate_waas_calls_total", {"provider": "cobo_waas", "outcome": "server_error"}) == 2


async def test_untrusted_waas_answer_is_never_stored(
    start: Start, run_worker: RunWorker, db: Db, standin: WaasStandin
) -> None:
    settings, client = await start("Success", recheck_backoff_s=(0.05,))
    standin.fail("bad_signature")
    await _report(client)
    await run_worker(settings)
    row = await _row(db)
    # The forged answer was refused; the re-check read the signed one.
    assert (row["waas_status"], row["attempts"]) == ("Success", 2)


async def test_bounded_wait_answers_with_the_fresh_state(
    start: Start, run_worker: RunWorker, db: Db, standin: WaasStandin
) -> None:
    settings, client = await start("MPCProcessing", "Success", wait_ms=5000)
    started = time.monotonic()
    answer = asyncio.create_task(_report(client, 130))
    await asyncio.sleep(0.2)  # the job is enqueued before the burst worker starts
    worker = asyncio.ensure_future(run_worker(settings))
    response = await answer
    body = await response.json()
    assert body["result"]["status"] == "MPCProcessing" and time.monotonic() - started < 5
    await worker


async def test_refusals_use_the_envelope(start: Start, redis: Redis) -> None:
    settings, client = await start()
    cases = [
        (await _report(client, key=None), 401),
        (await _report(client, key="wrong-key-0123456789"), 401),
        (await _report(client, wallet="9c2f7a4e-3c1d-4e5f-8a6b-7c8d9e0f1a2b"), 404),
        (await _report(client, wallet="not-a-uuid"), 422),
        (await _report(client, status="190"), 422),
        (await _report(client, tss_request_id=""), 422),
        (await _report(client, results=[{"threshold": "2"}]), 422),
        (await _report(client, failed_reasons=["x" * 1000] * 300), 413),
        (
            await client.post(f"/api/v1/wallets/{WALLET}/tss/callback", data=b"{nope", headers={"X-API-Key": API_KEY}),
            422,
        ),
    ]
    for response, status in cases:
        body = await response.json()
        assert response.status == status, body
        assert body["success"] is False and body["result"] is None and body["message"]
        assert set(body) == {"result", "success", "suggestion", "message", "meta"}
    # Nothing refused reached the queue.
    assert await redis.zcard(settings.queue_name) == 0
    assert _callbacks(client, "unauthorized") == 2 and _callbacks(client, "unknown_wallet") == 1
    assert _callbacks(client, "invalid") == 5 and _callbacks(client, "too_large") == 1


async def test_redis_unreachable_is_503_in_the_envelope(
    gateway: Gateway, settings: Settings, standin: WaasStandin
) -> None:
    port = free_port()  # nothing answers there
    settings = dataclasses.replace(_settings(settings, standin), redis_url=f"redis://127.0.0.1:{port}/0")
    client = await gateway(settings)
    response = await _report(client)
    body = await response.json()
    assert response.status == 503 and body["success"] is False and "retry" in body["message"]


async def test_waas_webhook_triggers_reconciliation(
    start: Start, run_worker: RunWorker, db: Db, standin: WaasStandin
) -> None:
    # Horizon 0: no timer re-checks, so only the report and the webhook read WaaS.
    settings, client = await start("MPCProcessing", horizon_s=0)
    await _report(client, 130)
    await run_worker(settings)
    standin.script(VAULT, REQ, "Success")
    event = {
        "event_id": "evt-1",
        "url": "https://example.com/cobo/waas/webhooks",
        "created_timestamp": 1720000000001,
        "type": "wallets.mpc.tss_request.succeeded",
        # The webhook's own status is not trusted as the state: WaaS is re-read.
        "data": {"data_type": "TSSRequest", "tss_request_id": REQ, "status": "Success"},
    }
    body = orjson.dumps(event)
    signed = {"BIZ_TIMESTAMP": "1720000000002", "BIZ_RESP_SIGNATURE": standin.sign(body)["Biz-Resp-Signature"]}
    refused = await client.post("/cobo/waas/webhooks", data=body, headers=signed)
    assert refused.status == 401  # signed over another timestamp
    headers = standin.sign(body, "1720000000002")
    headers = {"BIZ_TIMESTAMP": headers["Biz-Timestamp"], "BIZ_RESP_SIGNATURE": headers["Biz-Resp-Signature"]}
    for _ in range(2):  # Cobo retries: the same event_id is one event
        assert (await client.post("/cobo/waas/webhooks", data=body, headers=headers)).status == 200
    other = orjson.dumps({**event, "event_id": "evt-2", "type": "wallets.transaction.created", "data": {}})
    ignored = await client.post("/cobo/waas/webhooks", data=other, headers=standin.sign(other))
    assert (await ignored.json()) == {"status": "ignored"}
    await run_worker(settings)
    row = await _row(db)
    assert (row["waas_status"], row["waas_terminal"], row["attempts"]) == ("Success", True, 2)


async def test_demo_samples_show_every_outcome(start: Start, run_worker: RunWorker) -> None:
    settings, client = await start()
    async with aiohttp.ClientSession() as session:
        lines = await send_cobo_ucw(settings, session, str(client.make_url("")).rstrip("/"))
    assert [line.split(": ", 1)[1][:3] for line in lines] == ["200", "200", "200", "401", "404", "422"]
    assert _callbacks(client, "accepted") == 2 and _callbacks(client, "duplicate") == 1


async def test_workers_rebuild_the_wallet_replica_redis_lost(start: Start, run_worker: RunWorker, redis: Redis) -> None:
    settings, client = await start("Success")
    wallets = client.app[UCW_WALLETS]
    assert wallets.get(WALLET) == VAULT
    await redis.flushdb()  # Redis lost everything; Postgres still has the wallet
    # The registry's version is gone with it: the next poll notices and the gateway forgets too.
    assert await until(lambda: wallets.get(WALLET) is None) < 2.0
    assert (await _report(client)).status == 404
    await run_worker(settings)  # worker start-up re-syncs the registry from Postgres and announces it
    assert (await _report(client)).status == 200
    await until(lambda: wallets.get(WALLET) == VAULT)


async def test_a_wallet_registered_after_start_is_accepted_at_once_and_replicated(
    start: Start, db: Db, redis: Redis
) -> None:
    settings, client = await start()
    wallets = client.app[UCW_WALLETS]
    other = "0d7c9e2a-5b4f-4a1e-9c3d-2e1f0a9b8c7d"
    assert (await _report(client, wallet=other)).status == 404
    await _register(db, redis, settings, other)
    # Not in this process's replica yet, or just arrived: Redis is asked, never a false 404.
    assert (await _report(client, wallet=other)).status == 200
    assert await until(lambda: wallets.get(other) == VAULT) < 1.0
    assert len(wallets) == 2


async def test_redis_down_a_known_wallet_is_spooled_an_unknown_one_503(
    gateway: Gateway, settings: Settings, db: Db, standin: WaasStandin, tmp_path: Path
) -> None:
    private = EmbeddedRedis(tmp_path / "redis").start()
    try:
        configured = dataclasses.replace(_settings(settings, standin), redis_url=private.url)
        own = Redis.from_url(private.url)
        await _register(db, own, configured)
        await own.aclose()
        client = await gateway(configured)
        await asyncio.to_thread(private.kill)
        response = await _report(client)
        body = await response.json()
        # The report is durable in the spool; what WaaS says is not known without Redis.
        assert response.status == 200 and body["success"] is True
        assert body["result"] == {"tss_request_id": REQ, "status": "", "waas_status_snapshot": ""}
        assert _callbacks(client, "spooled") == 1
        unknown = await _report(client, wallet="0d7c9e2a-5b4f-4a1e-9c3d-2e1f0a9b8c7d")
        assert unknown.status == 503 and (await unknown.json())["success"] is False
    finally:
        await asyncio.to_thread(private.stop)
