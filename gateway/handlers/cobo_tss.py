"""Cobo TSS Node callback server v2: `POST /v2/check`, `POST /v2/event`, `GET /ping`.

Every check gets a signed answer, whatever went wrong: the node retries when it gets no
response and treats the last failure as REJECT (protocols/cobo.md A.4), so a crash or a dropped
connection only delays a refusal, while a signed REJECT with a status says why at once.
HTTP 200 throughout, as the Python and Java templates do ([U] how the node reads non-2xx).

Same question, same answer: the first decision for a request_id is stored with the content
fingerprint in one Redis round trip that also enqueues its audit job (`gateway.decisions`). A retry
gets that decision back even if the policy changed since; a request that reuses the id with
other content is refused as a replay.

The answer's RS256 signature, the costliest step by far, is made beside the event loop
(`gateway/signer.py`: a signer process by default) while the loop serves the next requests.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.exceptions import RedisError

from gateway.decisions import DECISIONS
from gateway.handlers.common import count, envelope, hand_off
from gateway.keys import INGESTOR, METRICS, POLICY, REDIS_KEYS, SETTINGS
from gateway.middleware import error_response
from gateway.signer import SIGNER
from shared.config import CoboTssSettings
from shared.errors import InvalidInput, QueueUnavailable
from shared.jobs import EventEnvelope, key_hash
from shared.policy import shadow
from shared.policy.model import Action, Decision, Reason
from shared.policy.requests import request_to_data
from shared.policy.snapshot import decide
from shared.providers.cobo_jwt import TokenRejected, VerifyOptions, sign_rs256, verify_rs256
from shared.providers.cobo_tss import (
    FORM_FIELD,
    PROVIDER,
    CoboTssRequest,
    CoboTssResponse,
    RequestType,
    ResponseStatus,
    decode_package_data,
    fingerprint,
    parse_request,
    response_claims,
)
from shared.providers.cobo_tss_decision import Assessment, assess
from shared.providers.cobo_tss_event import parse_event

logger = logging.getLogger(__name__)
T = TypeVar("T")

_FORM_PREFIX = FORM_FIELD.encode("ascii") + b"="
_REPLAY = Reason("request_id_replayed", "", "this request_id was already answered for different content")


def _config(request: web.Request) -> CoboTssSettings:
    config = request.app[SETTINGS].providers.cobo_tss
    assert config is not None  # the routes exist only when Cobo TSS is configured
    return config


async def check(request: web.Request) -> web.Response:
    config = _config(request)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        count(request, PROVIDER, "too_large")
        return await _answer(request, ResponseStatus.INVALID_REQUEST, "", "request body too large")
    try:
        parsed = _read(request, body, config.node_public_key, parse_request)
    except TokenRejected as e:
        return await _answer(request, ResponseStatus.INVALID_TOKEN, "", str(e))
    except InvalidInput as e:
        return await _answer(request, ResponseStatus.INVALID_REQUEST, "", str(e))
    if parsed.request_type == RequestType.PING:
        _count_decision(request, "ping", Action.APPROVE, "ping")
        return await _answer(request, ResponseStatus.OK, parsed.request_id, "", Action.APPROVE)
    return await _decide(request, parsed, body)


async def _decide(request: web.Request, parsed: CoboTssRequest, body: bytes) -> web.Response:
    assessment = assess(parsed)
    decision, seconds = _evaluate(request, assessment)
    # After the answer; the request is in the payload already; a codec rejection is not the policy's.
    source = None if assessment.rejections else request.app.get(POLICY)
    audit = shadow.audit(source, assessment.request, decision, metrics=request.app[METRICS], with_request=False)
    content = fingerprint(parsed)
    memo = orjson.dumps({"fp": content, "action": decision.action.value, "error": _error(decision)})
    event = envelope(
        request,
        provider=PROVIDER,
        kind=f"decision.{parsed.type_label}",
        idempotency_key=parsed.request_id,
        body=body,
        payload={"request": request_to_data(assessment.request), "fingerprint": content},
        status=decision.action.value.lower(),
        decision=_decision_data(decision, seconds) | audit,
        policy_version=decision.policy_version,
    )
    memo_key = request.app[REDIS_KEYS].memo(PROVIDER, key_hash(PROVIDER, parsed.request_id))
    try:
        previous = await request.app[DECISIONS].decide_once(memo_key, memo, request.app[INGESTOR].item_for(event))
    except (RedisError, OSError) as e:
        logger.warning("cobo_tss %s: decision memo unavailable (%s)", parsed.request_id, type(e).__name__)
        count(request, PROVIDER, "unavailable")
        return await _answer(request, ResponseStatus.INTERNAL_ERROR, parsed.request_id, "decision store unavailable")
    if previous is None:
        count(request, PROVIDER, "accepted")
        _count_decision(request, parsed.type_label, decision.action, _first_code(decision))
        return await _answer(request, ResponseStatus.OK, parsed.request_id, _error(decision), decision.action)
    return await _repeat(request, parsed, event, content, previous)


async def _repeat(
    request: web.Request,
    parsed: CoboTssRequest,
    event: EventEnvelope,
    content: str,
    raw: bytes,
) -> web.Response:
    """A request_id seen before: the first answer if the content is the same, else a replay."""
    try:
        earlier = orjson.loads(raw)
    except orjson.JSONDecodeError:
        earlier = None
    if not isinstance(earlier, dict):  # not a memo we wrote: refuse, but with a signed answer
        logger.error("cobo_tss %s: unreadable decision memo", parsed.request_id)
        return await _answer(request, ResponseStatus.INTERNAL_ERROR, parsed.request_id, "unreadable decision memo")
    if earlier.get("fp") == content:
        count(request, PROVIDER, "duplicate")
        action = Action.APPROVE if earlier.get("action") == Action.APPROVE.value else Action.REJECT
        return await _answer(request, ResponseStatus.OK, parsed.request_id, str(earlier.get("error", "")), action)
    logger.warning("cobo_tss %s: request_id reused with different content: refused as a replay", parsed.request_id)
    count(request, PROVIDER, "replay")
    request.app[METRICS].decision_replays.labels(PROVIDER).inc()
    _count_decision(request, parsed.type_label, Action.REJECT, _REPLAY.code)
    await _audit_replay(request, parsed, event, content)
    error = f"{_REPLAY.code}: {_REPLAY.detail}"
    return await _answer(request, ResponseStatus.OK, parsed.request_id, error, Action.REJECT)


async def _audit_replay(request: web.Request, parsed: CoboTssRequest, event: EventEnvelope, content: str) -> None:
    # The replay is evidence: stored as its own event, keyed by its own content. The answer is
    # REJECT whatever happens here, so a failure to record it is only logged.
    replay = dataclasses.replace(
        event,
        kind=f"replay.{parsed.type_label}",
        idempotency_key=f"{parsed.request_id}:replay:{content}",
        status="rejected",
        decision={"action": Action.REJECT.value, "reasons": [_reason_data(_REPLAY)]},
    )
    try:
        # Not `hand_off`: the callback is already counted as a replay, not as an accepted one.
        await request.app[INGESTOR].submit(replay)
    except QueueUnavailable:
        logger.error("cobo_tss %s: replay could not be recorded", parsed.request_id)


def _evaluate(request: web.Request, assessment: Assessment) -> tuple[Decision, float]:
    snapshot = request.app[POLICY].current if POLICY in request.app else None
    version = snapshot.version if snapshot is not None else None
    started = time.perf_counter()
    if assessment.rejections:
        decision = Decision(Action.REJECT, assessment.rejections, version)
    else:
        decision = decide(snapshot, assessment.request)
    seconds = time.perf_counter() - started
    request.app[METRICS].decision_seconds.labels(PROVIDER).observe(seconds)
    return decision, seconds


def _read(request: web.Request, body: bytes, key: rsa.RSAPublicKey, parse: Callable[[object], T]) -> T:
    """Verify the form's token with `key`, decode its package and `parse` it; failures are counted."""
    try:
        claims = verify_rs256(_form_token(body), key, options=_options(_config(request)))
        return parse(decode_package_data(claims))
    except TokenRejected as e:
        count(request, PROVIDER, "unauthorized")
        request.app[METRICS].token_failures.labels(PROVIDER, e.code).inc()
        raise
    except InvalidInput:
        count(request, PROVIDER, "invalid")
        raise


def _form_token(body: bytes) -> str:
    """The single `TSS_JWT_MSG` value of a urlencoded form body ([I] content type not enforced)."""
    # What the node sends: the one field, its token needing no escapes. parse_qs would return
    # the same value (nothing to split or unquote) at several times the cost.
    if body.startswith(_FORM_PREFIX):
        value = body[len(_FORM_PREFIX) :]
        if value and value.isascii() and b"&" not in value and b"%" not in value and b"+" not in value:
            return value.decode("ascii")
    try:
        form = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput(FORM_FIELD, "the body is not an ASCII urlencoded form") from None
    values = form.get(FORM_FIELD, [])
    if len(values) != 1 or not values[0]:
        raise InvalidInput(FORM_FIELD, "expected exactly one non-empty form field")
    return values[0]


def _options(config: CoboTssSettings) -> VerifyOptions:
    return VerifyOptions(leeway_s=config.token_leeway_seconds)


async def _answer(
    request: web.Request, status: ResponseStatus, request_id: str, error: str, action: Action = Action.REJECT
) -> web.Response:
    """The signed answer token as a bare text/plain body (what the Python/Java templates send)."""
    config = _config(request)
    response = CoboTssResponse(request_id, status, action, error)
    claims = response_claims(response, issuer=config.issuer, ttl_minutes=config.response_ttl_minutes, now=time.time())
    signer = request.app.get(SIGNER)  # absent when answers are signed on the loop (gateway/signer.py)
    token = sign_rs256(claims, config.private_key) if signer is None else await signer.sign(claims)
    return web.Response(text=token, content_type="text/plain")


def _error(decision: Decision) -> str:
    if decision.action is Action.APPROVE:
        return ""
    return "; ".join(f"{r.code}: {r.detail}" if r.detail else r.code for r in decision.reasons)


def _first_code(decision: Decision) -> str:
    return decision.reasons[0].code if decision.reasons else "none"


def _count_decision(request: web.Request, request_type: str, action: Action, reason: str) -> None:
    request.app[METRICS].decisions.labels(PROVIDER, request_type, action.value, reason).inc()


def _reason_data(reason: Reason) -> dict[str, str]:
    return {"code": reason.code, "rule": reason.rule, "detail": reason.detail}


def _decision_data(decision: Decision, seconds: float) -> dict[str, object]:
    return {
        "action": decision.action.value,
        "reasons": [_reason_data(r) for r in decision.reasons],
        "decision_seconds": seconds,
    }


# -- events and ping -------------------------------------------------------------------------


async def event(request: web.Request) -> web.Response:
    """TSS Node events: verified with the event key, enqueued, answered `""` (the templates' body)."""
    config = _config(request)
    if config.event_public_key is None:
        return error_response(404, "not_found", "no such route")
    body = await request.read()
    try:
        tss_event = _read(request, body, config.event_public_key, parse_event)
    except (TokenRejected, InvalidInput):  # the event templates answer 400 to both
        return web.json_response("", status=400)
    item = envelope(
        request,
        provider=PROVIDER,
        kind=tss_event.kind,
        idempotency_key=tss_event.idempotency_key,
        body=body,
        payload=tss_event.body,
    )
    if await hand_off(request, item) is None:
        return web.json_response("", status=503)
    return web.json_response("")


async def ping(request: web.Request) -> web.Response:
    """Health answer shaped like the Go template's `GET /ping`."""
    return web.json_response({"server": _config(request).issuer, "timestamp": str(int(time.time() * 1000))})
