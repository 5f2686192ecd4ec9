"""`reconcile_tss_request`: read a TSS request from Cobo WaaS and store it as the truth.

A UCW report ("TSS request X is now N") or a WaaS webhook only *triggers* a read; what is stored
as the state is what `get_tss_request_by_id` answered. While WaaS has not reached a terminal
state, the job schedules its own re-check with backoff, up to a horizon after the first report.
A report that contradicts the WaaS state is flagged on the row and counted.

Re-checks form one chain per row: each run writes `next_check_at` and enqueues one deferred job
carrying that time as `due_at`; a job whose `due_at` is no longer the row's `next_check_at` was
superseded (a newer report or webhook started a fresh chain) and exits.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from shared.config import CoboUcwSettings, CoboWaasSettings
from shared.errors import ApiError
from shared.jobs import RECONCILE_TSS_REQUEST
from shared.metrics import Metrics
from shared.providers import cobo_ucw
from shared.providers.cobo_ucw import Agreement, compare
from shared.providers.cobo_ucw_store import (
    TssRow,
    count_open,
    load_row,
    publish_state,
    record_report,
    record_waas,
    sync_wallets,
)
from shared.waas.cobo_client import CoboWaasClient, WaasUnavailable
from shared.waas.cobo_models import TSSRequest
from workers.consumer import Retry
from workers.deps import JobCtx, WorkerDeps, deps
from workers.store import MAX_TRIES as STORE_MAX_TRIES
from workers.store import backoff
from workers.transient import POSTGRES_OR_REDIS as TRANSIENT
from workers.tss_followups import PROVIDER, WEBHOOK_PROVIDER

logger = logging.getLogger(__name__)

# WaaS failures never fail the job (they schedule a re-check); Postgres or Redis being away does,
# and is retried on the same schedule as storing events.
MAX_TRIES = STORE_MAX_TRIES
_CLIENT = "cobo_waas_client"
# Used when only webhooks are configured (no UCW section): the same re-check policy.
_DEFAULT_POLICY = CoboUcwSettings(api_keys=())


@dataclass(frozen=True, slots=True)
class Report:
    """What a UCW client reported (None for a webhook- or timer-triggered check)."""

    status: int
    vault_id: str
    received_at: float


# -- worker lifetime: one WaaS client (so one rate limit and concurrency cap) per worker ------


@asynccontextmanager
async def waas_resources(ctx: JobCtx) -> AsyncIterator[None]:
    """Open the WaaS client and re-sync the wallet replica for the worker's lifetime (no-op if disabled)."""
    d = deps(ctx)
    config = d.settings.providers.cobo_waas
    if config is None:
        yield
        return
    async with d.pool.acquire() as conn:
        count = await sync_wallets(conn, d.redis, d.keys)
    logger.info("ucw wallets replica rebuilt: %d wallets", count)
    async with aiohttp.ClientSession() as session:
        ctx[_CLIENT] = build_client(session, config, d.metrics)
        yield


def build_client(session: aiohttp.ClientSession, config: CoboWaasSettings, metrics: Metrics) -> CoboWaasClient:
    """A WaaS client whose every attempt is counted and timed."""

    def observe(outcome: str, seconds: float) -> None:
        metrics.waas_calls.labels(WEBHOOK_PROVIDER, outcome).inc()
        metrics.waas_call_seconds.labels(WEBHOOK_PROVIDER).observe(seconds)

    return CoboWaasClient(
        session,
        base_url=config.base_url,
        api_secret=config.api_secret,
        response_key=config.response_public_key,
        options=config.client,
        observe=observe,
    )


# -- the job ---------------------------------------------------------------------------------


async def reconcile_tss_request(
    ctx: JobCtx, wallet_uuid: str, tss_request_id: str, report: object = None, due_at: float | None = None
) -> str:
    """Read the TSS request from WaaS, store it, flag a contradicting report, schedule a re-check."""
    client = ctx.get(_CLIENT)
    if not isinstance(client, CoboWaasClient):
        logger.warning("reconcile_tss_request without Cobo WaaS settings: dropped")
        return "disabled"
    try:
        return await reconcile(deps(ctx), client, wallet_uuid, tss_request_id, _report(report), due_at=due_at)
    except TRANSIENT as e:
        raise Retry(defer=backoff(ctx)) from e


def _report(value: object) -> Report | None:
    # Our own payload, but it crossed Redis: rebuild it field by field.
    if not isinstance(value, dict):
        return None
    return Report(int(value["status"]), str(value["vault_id"]), float(value["received_at"]))


async def reconcile(
    d: WorkerDeps,
    client: CoboWaasClient,
    wallet_uuid: str,
    tss_request_id: str,
    report: Report | None,
    *,
    due_at: float | None = None,
) -> str:
    """The job body without arq; returns what happened (synced, waas_error, superseded, unknown, settled)."""
    row = await _load(d, wallet_uuid, tss_request_id, report)
    if row is None:
        return "unknown"
    if report is None and due_at is not None and not _owns_chain(row, due_at):
        return "superseded"
    if report is None and due_at is None and row.waas_terminal:
        return "settled"
    policy = d.settings.providers.cobo_ucw or _DEFAULT_POLICY
    tss, error, retry_after = await _read(client, row)
    row = await _store(d, row, tss, error, retry_after, policy)
    if tss is not None and report is not None:
        d.metrics.reconcile_lag_seconds.labels(PROVIDER).observe(max(0.0, time.time() - report.received_at))
    await _schedule(d, row)
    async with d.pool.acquire() as conn:
        d.metrics.reconcile_pending.labels(PROVIDER).set(await count_open(conn))
    return "synced" if tss is not None else "waas_error"


async def _load(d: WorkerDeps, wallet_uuid: str, tss_request_id: str, report: Report | None) -> TssRow | None:
    async with d.pool.acquire() as conn:
        if report is None:
            return await load_row(conn, wallet_uuid, tss_request_id)
        at = dt.datetime.fromtimestamp(report.received_at, dt.UTC)
        return await record_report(
            conn,
            wallet_uuid=wallet_uuid,
            tss_request_id=tss_request_id,
            vault_id=report.vault_id,
            status=report.status,
            at=at,
        )


def _owns_chain(row: TssRow, due_at: float) -> bool:
    return row.next_check_at is not None and abs(row.next_check_at.timestamp() - due_at) < 0.001


async def _read(client: CoboWaasClient, row: TssRow) -> tuple[TSSRequest | None, str | None, float | None]:
    try:
        return await client.get_tss_request_by_id(row.vault_id, row.tss_request_id), None, None
    except WaasUnavailable as e:
        logger.warning("waas unavailable for tss request %s: %s", row.tss_request_id, e.status or e.body)
        return None, f"unavailable: {e.status or e.body}", e.retry_after_s
    except ApiError as e:
        # 4xx (the request may not be visible yet), or an answer we refused to trust.
        logger.warning("waas refused tss request %s: %s %s", row.tss_request_id, e.status, e.body[:120])
        return None, f"{type(e).__name__} {e.status}: {e.body[:200]}", None


async def _store(
    d: WorkerDeps,
    row: TssRow,
    tss: TSSRequest | None,
    error: str | None,
    retry_after: float | None,
    policy: CoboUcwSettings,
) -> TssRow:
    now = dt.datetime.now(dt.UTC)
    horizon_reached = now >= row.first_reported_at + dt.timedelta(seconds=policy.horizon_s)
    terminal = tss.status.is_terminal if tss else row.waas_terminal
    disagreement = row.disagreement
    if tss is not None and row.reported_status is not None:
        agreement = compare(row.reported_status, tss.status, horizon_reached=horizon_reached)
        disagreement = agreement is Agreement.DISAGREE
    next_check = None
    if not terminal and not horizon_reached:
        delay = policy.recheck_backoff_s[min(row.attempts, len(policy.recheck_backoff_s) - 1)]
        next_check = now + dt.timedelta(seconds=max(delay, retry_after or 0.0))
    async with d.pool.acquire() as conn:
        stored = await record_waas(
            conn,
            row,
            waas_status=tss.status_raw if tss else None,
            terminal=terminal,
            snapshot=tss.snapshot() if tss else None,
            disagreement=disagreement,
            error=error,
            next_check_at=next_check,
        )
    if disagreement and not row.disagreement:
        d.metrics.reconcile_disagreements.labels(PROVIDER).inc()
        logger.warning(
            "tss request %s: reported %s but WaaS says %s",
            row.tss_request_id,
            cobo_ucw.status_name(row.reported_status or 0),
            stored.waas_status,
        )
    await publish_state(d.redis, d.keys, stored)
    return stored


async def _schedule(d: WorkerDeps, row: TssRow) -> None:
    if row.next_check_at is None:
        return
    due = row.next_check_at.timestamp()
    await d.queue.enqueue(
        RECONCILE_TSS_REQUEST,
        row.wallet_uuid,
        row.tss_request_id,
        None,
        due,
        job_id=f"{PROVIDER}:recheck:{row.wallet_uuid}:{row.tss_request_id}:{due:.3f}",
        at=due,
    )
