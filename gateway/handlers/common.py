"""Steps every provider handler shares: capped body read, envelope, durable hand-off, counting."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.ingest import Outcome
from gateway.keys import INGESTOR, METRICS
from gateway.middleware import REQUEST_ID
from shared.errors import QueueUnavailable
from shared.jobs import STORE_EVENT, EventEnvelope, JsonObject, scrub_headers

# The policy audit (`shared.policy.shadow.audit`) of a synchronous route's decision, kept until
# its event envelope is built and stored beside the verdict.
POLICY_AUDIT = web.RequestKey("policy_audit", dict)


def count(request: web.Request, provider: str, outcome: str) -> None:
    """Count a callback outcome; `outcome` must come from a fixed set (see shared.metrics)."""
    request.app[METRICS].callbacks.labels(provider, outcome).inc()


async def read_body(request: web.Request, provider: str) -> bytes:
    """The raw body, capped by the app's `client_max_size` (413 when over, counted)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        count(request, provider, "too_large")
        raise


def envelope(
    request: web.Request,
    *,
    provider: str,
    kind: str,
    idempotency_key: str,
    body: bytes,
    payload: JsonObject | None = None,
    status: str = "received",
    decision: JsonObject | None = None,
    policy_version: int | None = None,
) -> EventEnvelope:
    """Wrap an authenticated, parsed callback for the workers (headers scrubbed of secrets)."""
    return EventEnvelope(
        provider=provider,
        kind=kind,
        idempotency_key=idempotency_key,
        received_at=time.time(),
        raw_body=body,
        request_id=request[REQUEST_ID],
        headers=scrub_headers(request.headers),
        payload=payload,
        status=status,
        decision=decision,
        policy_version=policy_version,
    )


async def hand_off(request: web.Request, event: EventEnvelope, function: str = STORE_EVENT) -> Outcome | None:
    """Make the callback durable (queue or spool) and count it; None when nothing could take it."""
    try:
        outcome = await request.app[INGESTOR].submit(event, function)
    except QueueUnavailable:
        count(request, event.provider, "unavailable")
        return None
    count(request, event.provider, outcome.value)
    return outcome
