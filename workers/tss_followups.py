"""What a stored Cobo UCW report or WaaS TSS-request webhook starts: `reconcile_tss_request` jobs.

Kept apart from `workers.reconcile` because `workers.followups` imports it and the job module
imports `workers.store` (which imports `workers.followups`).
"""

from __future__ import annotations

import logging

from shared.jobs import RECONCILE_TSS_REQUEST, key_hash
from shared.providers import cobo_ucw
from shared.providers.cobo_ucw_store import rows_for_request
from workers.deps import WorkerDeps
from workers.writer import Stored

logger = logging.getLogger(__name__)

PROVIDER = cobo_ucw.PROVIDER
WEBHOOK_PROVIDER = "cobo_waas"


async def follow_report(d: WorkerDeps, stored: Stored) -> None:
    """After a UCW report is stored: reconcile it (one job per report, by its idempotency key)."""
    event = stored.event
    payload = event.payload or {}
    await d.queue.enqueue(
        RECONCILE_TSS_REQUEST,
        str(payload["wallet_uuid"]),
        str(payload["tss_request_id"]),
        {"status": int(payload["status"]), "vault_id": str(payload["vault_id"]), "received_at": event.received_at},
        None,
        job_id=f"{PROVIDER}:reconcile:{key_hash(event.provider, event.idempotency_key)}",
    )


async def follow_webhook(d: WorkerDeps, stored: Stored) -> None:
    """After a WaaS TSS-request webhook is stored: re-read every row about that request."""
    event = stored.event
    tss_request_id = str((event.payload or {})["tss_request_id"])
    async with d.pool.acquire() as conn:
        rows = await rows_for_request(conn, tss_request_id)
    if not rows:
        # Nobody reported it (yet): the webhook names no wallet or vault, so there is nothing to read.
        logger.info("waas webhook about unknown tss request %s: nothing to reconcile", tss_request_id)
    for row in rows:
        job_id = f"{WEBHOOK_PROVIDER}:reconcile:{key_hash(event.provider, event.idempotency_key)}:{row.wallet_uuid}"
        await d.queue.enqueue(RECONCILE_TSS_REQUEST, row.wallet_uuid, tss_request_id, None, None, job_id=job_id)
