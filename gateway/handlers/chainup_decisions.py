"""The synchronous steps the ChainUp routes share: decide from memory, answer once, count.

Same question, same answer: the first verdict for a memo key is stored with the content
fingerprint in the one Redis round trip that also enqueues its audit job (`gateway.decisions`). A
retry gets that verdict back even if the policy changed since; a request that reuses the key
with other content is refused as a replay and recorded as evidence.

A rejection caused by a state of *this* process or of the registry (no policy loaded yet, the
order not registered yet) is not remembered: the merchant may register the order a moment
later and the provider asks again; remembering FAILURE would refuse it for days.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from gateway.decisions import DECISIONS
from gateway.handlers.common import POLICY_AUDIT, count, envelope, hand_off
from gateway.keys import INGESTOR, METRICS, ORDERS, POLICY, REDIS_KEYS
from shared.jobs import EventEnvelope, JsonObject, key_hash
from shared.policy import shadow
from shared.policy.model import Action, Decision, DecisionRequest, Reason
from shared.policy.rules import ExpectedOrderRule, Scope
from shared.policy.snapshot import decide
from shared.providers.jsonfields import plain

logger = logging.getLogger(__name__)

# A second confirmation needs a registered order whatever the policy says (issue 5).
_ORDER_REQUIRED = ExpectedOrderRule("registered_order_required", Scope())
_TRANSIENT = frozenset({"no_policy", "order_not_found", "order_registry_unavailable"})
_REPLAY = Reason("request_id_replayed", "", "this request was already answered for different content")


def decide_now(request: web.Request, provider: str, question: DecisionRequest, *, need_order: bool = False) -> Decision:
    """The policy's verdict from the in-memory snapshot and order replica (no I/O)."""
    snapshot = request.app[POLICY].current if POLICY in request.app else None
    orders = request.app.get(ORDERS)
    started = time.perf_counter()
    decision = own = decide(snapshot, question, orders=orders)
    if need_order and decision.action is Action.APPROVE:
        verdict = _ORDER_REQUIRED.check(question, orders, time.time())
        if isinstance(verdict, Reason):
            decision = Decision(Action.REJECT, (verdict,), decision.policy_version)
    request.app[METRICS].decision_seconds.labels(provider).observe(time.perf_counter() - started)
    # The policy's own verdict (before the order requirement), as the shadow's is.
    request[POLICY_AUDIT] = shadow.audit(
        request.app.get(POLICY), question, own, orders=orders, metrics=request.app[METRICS]
    )
    return decision


async def answer_once(request: web.Request, event: EventEnvelope, decision: Decision, fingerprint: str) -> bool | None:
    """The verdict to send (True approve): ours when first, the remembered one for a retry, False
    for a replay; None when Redis failed (callers fail closed). Counts the outcome."""
    provider = event.provider
    memo_key = request.app[REDIS_KEYS].memo(provider, key_hash(provider, event.idempotency_key))
    approved = decision.action is Action.APPROVE
    try:
        if decision.policy_version is None or any(r.code in _TRANSIENT for r in decision.reasons):
            previous = await request.app[DECISIONS].peek(memo_key)  # a retry of an earlier verdict?
        else:
            value = orjson.dumps({"approved": approved, "fingerprint": fingerprint})
            previous = await request.app[DECISIONS].decide_once(memo_key, value, request.app[INGESTOR].item_for(event))
    except (RedisError, OSError) as e:
        logger.warning("%s %s: decision memo unavailable (%s)", provider, event.idempotency_key, type(e).__name__)
        count(request, provider, "unavailable")
        return None
    if previous is None:
        _count(
            request,
            event,
            "APPROVE" if approved else "REJECT",
            decision.reasons[0].code if decision.reasons else "none",
        )
        return approved
    earlier = orjson.loads(previous)
    if earlier.get("fingerprint") == fingerprint:
        _count(request, event, "APPROVE" if earlier.get("approved") else "REJECT", "remembered")
        return bool(earlier.get("approved"))
    await record_replay(request, event, fingerprint)
    return False


async def same_content(request: web.Request, provider: str, key: str, fingerprint: str) -> bool:
    """False when an answer remembered under `key` was for other content (raises RedisError/OSError)."""
    previous = await request.app[DECISIONS].peek(request.app[REDIS_KEYS].memo(provider, key_hash(provider, key)))
    return previous is None or orjson.loads(previous).get("fingerprint") == fingerprint


def _count(request: web.Request, event: EventEnvelope, action: str, reason: str) -> None:
    request.app[METRICS].decisions.labels(event.provider, event.kind, action, reason).inc()
    count(request, event.provider, "approved" if action == "APPROVE" else "rejected")


async def record_replay(request: web.Request, event: EventEnvelope, fingerprint: str) -> None:
    """Count a request that reuses a key with other content, and keep it as evidence."""
    logger.warning("%s %s: reused with different content: refused as a replay", event.provider, event.idempotency_key)
    request.app[METRICS].decision_replays.labels(event.provider).inc()
    _count(request, event, "REJECT", _REPLAY.code)
    replay = dataclasses.replace(
        event,
        kind=f"replay.{event.kind}",
        idempotency_key=f"{event.idempotency_key}:replay:{fingerprint}",
        status="rejected",
        decision={"action": Action.REJECT.value, "reasons": [_reason_json(_REPLAY)], "policy_version": None},
    )
    # The answer is FAILURE whatever happens here; a replay we cannot record is only logged.
    if await hand_off(request, replay) is None:
        logger.error("%s %s: replay could not be recorded", event.provider, event.idempotency_key)


def event_for(
    request: web.Request,
    provider: str,
    kind: str,
    key: str,
    body: bytes,
    parsed: object,
    decision: Decision | None = None,
) -> EventEnvelope:
    """The audit envelope of a parsed ChainUp callback (and its verdict, for decisions)."""
    payload = plain(parsed)
    assert isinstance(payload, dict)  # `plain` of a dataclass is always an object
    return envelope(
        request,
        provider=provider,
        kind=kind,
        idempotency_key=key,
        body=body,
        payload=payload,
        status="received" if decision is None else decision.action.value.lower(),
        decision=None if decision is None else _decision_json(decision) | request.get(POLICY_AUDIT, {}),
        policy_version=None if decision is None else decision.policy_version,
    )


def _reason_json(reason: Reason) -> JsonObject:
    return {"code": reason.code, "rule": reason.rule, "detail": reason.detail}


def _decision_json(decision: Decision) -> JsonObject:
    return {
        "action": decision.action.value,
        "reasons": [_reason_json(r) for r in decision.reasons],
        "policy_version": decision.policy_version,
    }
