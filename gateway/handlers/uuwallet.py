"""UU Wallet WaaS callbacks: `POST /uuwallet/callback` and `POST /uuwallet/withdraw-info`.

The WaaS retries until it reads `errCode` 0, so 0 is answered only once the callback is durable
(queue or spool) and every failure is a non-zero code: a refusal here is a retry there, never a
loss. Type 2 (withdrawal second confirmation) is answered synchronously from the registered
order and the policy snapshot, once per `callBackId` (retries get the first answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import orjson
from aiohttp import web
from redis.exceptions import RedisError

from gateway.decisions import DECISIONS
from gateway.handlers.common import POLICY_AUDIT, count, envelope, hand_off
from gateway.ingest import Outcome
from gateway.keys import INGESTOR, METRICS, ORDERS, POLICY, REDIS_KEYS, SETTINGS, OrderBook
from gateway.middleware import REQUEST_ID
from shared.config import UuWalletSettings
from shared.errors import InvalidInput, Unauthorized
from shared.jobs import key_hash
from shared.policy import shadow
from shared.policy.model import Action, Decision, DecisionRequest, OrderView
from shared.policy.snapshot import PolicySnapshot, decide
from shared.providers import uuwallet as uu
from shared.providers import uuwallet_decisions as ud

logger = logging.getLogger(__name__)

PROVIDER = uu.PROVIDER
_HTTP_STATUS = {uu.ErrCode.OK: 200, uu.ErrCode.INVALID: 400, uu.ErrCode.REJECTED: 200, uu.ErrCode.UNAVAILABLE: 503}


def _reply(
    config: UuWalletSettings, code: uu.ErrCode, *, message: str = "", data: Mapping[str, object] | None = None
) -> web.Response:
    return web.json_response(uu.answer(config.public_key, code, message=message, data=data), status=_HTTP_STATUS[code])


def _refusal(status: int, message: str) -> web.Response:
    # Before the body is opened there is nothing to echo, so `data` stays empty.
    return web.json_response({"errCode": uu.ErrCode.INVALID.value, "message": message, "data": ""}, status=status)


Opened = tuple[UuWalletSettings, bytes, uu.Callback]


async def _open(request: web.Request) -> Opened | web.Response:
    """Authenticate, read (capped), decrypt and type a callback, or the answer refusing it."""
    config = request.app[SETTINGS].providers.uuwallet
    assert config is not None  # the routes exist only when UU Wallet is configured
    try:
        uu.check_api_key(request.headers.get("X-API-KEY"), config.api_keys)
    except Unauthorized as e:
        count(request, PROVIDER, "unauthorized")
        return _refusal(401, str(e))
    try:
        body: bytes | None = await request.read()
    except web.HTTPRequestEntityTooLarge:
        # Over CALLGATE_MAX_BODY_BYTES: answered here, in the envelope the WaaS reads, not the
        # middleware's JSON error (as a body over this route's own cap is).
        body = None
    if body is None or len(body) > config.max_body_bytes:
        count(request, PROVIDER, "too_large")
        return _refusal(413, "body too large")
    try:
        return config, body, uu.parse_callback(uu.decrypt_body(body, config.public_key))
    except InvalidInput as e:
        count(request, PROVIDER, "invalid")
        logger.info("uuwallet callback refused: %s (request %s)", e, request[REQUEST_ID])
        return _reply(config, uu.ErrCode.INVALID, message=str(e))


def _snapshot(request: web.Request) -> PolicySnapshot | None:
    source = request.app.get(POLICY)
    return source.current if source is not None else None


# -- notifications ---------------------------------------------------------------------------


async def callback(request: web.Request) -> web.Response:
    opened = await _open(request)
    if isinstance(opened, web.Response):
        return opened
    config, body, cb = opened
    echo = uu.echo(cb.header)
    if isinstance(cb, uu.Ignored):
        count(request, PROVIDER, "ignored")  # NOTIFY_UNKNOWN: acknowledged, nothing to process
        return _reply(config, uu.ErrCode.OK, data=echo)
    if isinstance(cb, uu.WithdrawRequest):
        count(request, PROVIDER, "invalid")
        return _reply(config, uu.ErrCode.INVALID, message="type 2 belongs on the withdraw-info URL", data=echo)
    key = uu.idempotency_key(cb)
    decision = _deposit_decision(request, cb, key) if isinstance(cb, uu.Deposit) else None
    held = decision is not None and decision.action is Action.REJECT
    event = envelope(
        request,
        provider=PROVIDER,
        kind=cb.header.type.name.lower(),
        idempotency_key=key,
        body=body,
        payload=uu.to_payload(cb),
        status="held" if held else "received",
        decision=_decision_json(decision) | request.get(POLICY_AUDIT, {}) if decision is not None else None,
        policy_version=decision.policy_version if decision is not None else None,
    )
    outcome = await hand_off(request, event)
    if outcome is None:
        return _reply(config, uu.ErrCode.UNAVAILABLE, message="cannot record the callback now; retry", data=echo)
    if held and outcome is not Outcome.DUPLICATE:
        request.app[METRICS].uuwallet_deposits_held.inc()
    return _reply(config, uu.ErrCode.OK, data=echo)


def _deposit_decision(request: web.Request, deposit: uu.Deposit, key: str) -> Decision:
    # REJECT = hold: stored flagged, not forwarded as credited. No snapshot fails closed (held).
    return _decide(request, "deposited", ud.deposit_request(deposit, key), None)


def _decide(request: web.Request, kind: str, question: DecisionRequest, orders: OrderView | None) -> Decision:
    started = time.perf_counter()
    decision = decide(_snapshot(request), question, orders=orders)
    metrics = request.app[METRICS]
    metrics.decision_seconds.labels(PROVIDER).observe(time.perf_counter() - started)
    request[POLICY_AUDIT] = shadow.audit(request.app.get(POLICY), question, decision, orders=orders, metrics=metrics)
    reason = decision.reasons[0].code if decision.reasons else ""
    metrics.decisions.labels(PROVIDER, kind, decision.action.value, reason).inc()
    return decision


def _decision_json(decision: Decision) -> dict[str, object]:
    return {
        "action": decision.action.value,
        "reasons": [{"code": r.code, "rule": r.rule, "detail": r.detail} for r in decision.reasons],
    }


# -- withdrawal second confirmation ----------------------------------------------------------


async def withdraw_info(request: web.Request) -> web.Response:
    opened = await _open(request)
    if isinstance(opened, web.Response):
        return opened
    config, body, cb = opened
    if not isinstance(cb, uu.WithdrawRequest):
        count(request, PROVIDER, "invalid")
        return _reply(config, uu.ErrCode.INVALID, message="only type 2 belongs on this URL", data=uu.echo(cb.header))
    try:
        return await _confirm(request, config, body, cb)
    except (RedisError, OSError) as e:
        # Fail closed and say "retry": the WaaS asks again, and nothing was promised.
        logger.warning("uuwallet confirmation unavailable: %s", type(e).__name__)
        _confirmed(request, "unavailable")
        return _reply(config, uu.ErrCode.UNAVAILABLE, message="cannot decide now; retry", data=uu.echo(cb.header))


async def _confirm(request: web.Request, config: UuWalletSettings, body: bytes, cb: uu.WithdrawRequest) -> web.Response:
    memo_key = request.app[REDIS_KEYS].memo(PROVIDER, key_hash(PROVIDER, cb.call_back_id))
    earlier = await request.app[DECISIONS].peek(memo_key)
    if earlier is not None:
        return _from_memo(request, config, cb, earlier)
    orders = request.app.get(ORDERS)
    order = orders.lookup(PROVIDER, cb.call_back_id) if orders is not None else None
    problem = ud.order_problem(cb, order, now=time.time())
    if problem is not None or order is None:
        # Not memoised: the merchant may register the order late, and the WaaS will ask again.
        _confirmed(request, problem or "unknown_order")
        return _reply(config, uu.ErrCode.REJECTED, message=problem or "unknown_order", data=uu.echo(cb.header))
    decision = _decide(request, "request_withdraw", ud.decision_request(cb, order), orders)
    if decision.policy_version is None:
        # No snapshot is a state of this process, not an answer about the order: not memoised.
        _confirmed(request, "no_policy")
        return _reply(config, uu.ErrCode.REJECTED, message="no_policy", data=uu.echo(cb.header))
    memo = orjson.dumps({**_decision_json(decision), "data": ud.confirmation_data(cb, order)})
    event = envelope(
        request,
        provider=PROVIDER,
        kind="request_withdraw",
        idempotency_key=f"confirm:{cb.call_back_id}",
        body=body,
        payload=uu.to_payload(cb),
        status="approved" if decision.action is Action.APPROVE else "rejected",
        decision=_decision_json(decision) | request.get(POLICY_AUDIT, {}),
        policy_version=decision.policy_version,
    )
    earlier = await request.app[DECISIONS].decide_once(memo_key, memo, request.app[INGESTOR].item_for(event))
    if earlier is not None:  # a concurrent retry decided first: answer what it answered
        return _from_memo(request, config, cb, earlier)
    if decision.action is Action.APPROVE and orders is not None:
        await _mark_confirmed(orders, cb.call_back_id)
    return _from_memo(request, config, cb, memo, first=True)


async def _mark_confirmed(orders: OrderBook, call_back_id: str) -> None:
    # The memo already binds this callBackId to its answer (retries get it whatever happens
    # here); marking the order consumed keeps it from vouching for anything else.
    try:
        if not await orders.confirm(PROVIDER, call_back_id):
            logger.warning("uuwallet order %s was already marked confirmed", call_back_id)
    except (RedisError, OSError) as e:
        logger.warning("uuwallet order %s approved but not marked confirmed: %s", call_back_id, type(e).__name__)


def _from_memo(
    request: web.Request, config: UuWalletSettings, cb: uu.WithdrawRequest, raw: bytes, *, first: bool = False
) -> web.Response:
    memo = orjson.loads(raw)
    data = memo["data"]
    if data.get("tenantUserId") != cb.header.tenant_user_id:
        # The same callBackId for another user is not a retry: never hand that order out.
        _confirmed(request, "tenant_mismatch")
        return _reply(config, uu.ErrCode.REJECTED, message="tenant_mismatch", data=uu.echo(cb.header))
    if memo["action"] != Action.APPROVE.value:
        _confirmed(request, "rejected" if first else "replay")
        reasons = ",".join(r["code"] for r in memo["reasons"]) or "rejected"
        return _reply(config, uu.ErrCode.REJECTED, message=reasons, data=uu.echo(cb.header))
    _confirmed(request, "approved" if first else "replay")
    # The order as first answered; only the correlation id is this request's.
    return _reply(config, uu.ErrCode.OK, data={**data, "requestUUID": cb.header.request_uuid})


def _confirmed(request: web.Request, outcome: str) -> None:
    request.app[METRICS].uuwallet_confirmations.labels(outcome).inc()
