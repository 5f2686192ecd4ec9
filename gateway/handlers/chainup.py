"""ChainUp routes: MPC Co-Signer approvals (synchronous) and Custody WaaS V2 notifications.

Every answer is ChainUp's plain `SUCCESS`/`FAILURE` (the self-check and the second confirmation
excepted), and anything that fails, including our own unavailability, is `FAILURE`: the
co-signer then does not sign, and the WaaS retries its notification later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl

from aiohttp import web
from redis.exceptions import RedisError

from gateway.handlers.chainup_decisions import answer_once, decide_now, event_for, record_replay, same_content
from gateway.handlers.common import count, hand_off, read_body
from gateway.keys import ORDERS, SETTINGS
from shared.config import ChainupCosignerSettings, ChainupWaasSettings
from shared.errors import InvalidInput
from shared.policy.model import Action, Decision, Reason
from shared.providers import chainup_cosigner as cosigner
from shared.providers import chainup_waas as waas

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

TOKEN_HEADER = "X-Callgate-Token"  # noqa: S105 (a header name, not a secret)


def _answer(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/plain")


# -- co-signer -------------------------------------------------------------------------------


async def cosigner_withdraw(request: web.Request) -> web.StreamResponse:
    return await _cosigner(request, cosigner.Kind.WITHDRAW)


async def cosigner_web3(request: web.Request) -> web.StreamResponse:
    return await _cosigner(request, cosigner.Kind.WEB3)


async def _cosigner(request: web.Request, kind: cosigner.Kind) -> web.StreamResponse:
    config = request.app[SETTINGS].providers.chainup_cosigner
    assert config is not None  # the route exists only when the co-signer is configured
    if not _cosigner_allowed(request, config):
        count(request, cosigner.PROVIDER, "unauthorized")
        return _answer(cosigner.FAILURE, 403)
    body = await read_body(request, cosigner.PROVIDER)
    try:
        if len(body) > config.max_body_bytes:
            raise InvalidInput("body", f"larger than {config.max_body_bytes} bytes")
        callback = cosigner.parse_callback(cosigner.decode_body(body), kind)
    except InvalidInput:
        count(request, cosigner.PROVIDER, "invalid")
        return _answer(cosigner.FAILURE, 400)
    if isinstance(callback, cosigner.VerifyPublicHash):
        count(request, cosigner.PROVIDER, "self_check")
        return web.json_response(_self_check(callback, config))
    if callback.type is cosigner.CallbackType.SIGN_SUCCESS:
        return await _sign_success(request, kind, callback, body)
    return await _sign_start(request, kind, callback, body)


def _cosigner_allowed(request: web.Request, config: ChainupCosignerSettings) -> bool:
    if config.allowed_networks:
        try:
            source = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return False
        if not any(source in network for network in config.allowed_networks):
            return False
    if config.token is None:
        return True
    # [I] The co-signer's config holds only a URL, so the token may also ride in `?token=` when no
    # proxy in front of us can add the header.
    given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
    return hmac.compare_digest(given.encode(), config.token.encode())


def _self_check(check: cosigner.VerifyPublicHash, config: ChainupCosignerSettings) -> dict[str, str]:
    return cosigner.answer_verify_public_hash(
        check,
        app_id=config.app_id,
        client_system_public_key_pem=config.client_system_public_key_pem,
        verify_sign_public_key_pem=config.verify_sign_public_key_pem,
    )


async def _sign_success(
    request: web.Request, kind: cosigner.Kind, callback: cosigner.SignCallback, body: bytes
) -> web.StreamResponse:
    key = f"{cosigner.memo_key(kind, callback)}:{callback.txid or ''}"
    event = event_for(request, cosigner.PROVIDER, f"{kind.value}.sign_success", key, body, callback)
    outcome = await hand_off(request, event)
    return _answer(cosigner.SUCCESS) if outcome is not None else _answer(cosigner.FAILURE, 503)


async def _sign_start(
    request: web.Request, kind: cosigner.Kind, callback: cosigner.SignCallback, body: bytes
) -> web.StreamResponse:
    decision = decide_now(request, cosigner.PROVIDER, cosigner.decision_request(callback))
    memo_key, fingerprint = cosigner.memo_key(kind, callback), cosigner.fingerprint(callback)
    event = event_for(request, cosigner.PROVIDER, f"{kind.value}.sign_start", memo_key, body, callback, decision)
    if callback.pending_round:
        # A speed-up replaces the same transaction: it must not carry other content than the
        # round it speeds up (one extra read, on speed-ups only).
        regular = cosigner.memo_key(kind, dataclasses.replace(callback, pending_round=False))
        try:
            drifted = not await same_content(request, cosigner.PROVIDER, regular, fingerprint)
        except (RedisError, OSError):
            count(request, cosigner.PROVIDER, "unavailable")
            return _answer(cosigner.FAILURE)
        if drifted:
            await record_replay(request, event, fingerprint)
            return _answer(cosigner.FAILURE)
    approved = await answer_once(request, event, decision, fingerprint)
    return _answer(cosigner.SUCCESS if approved else cosigner.FAILURE)


# -- Custody WaaS V2 -------------------------------------------------------------------------


async def waas_notify(request: web.Request) -> web.StreamResponse:
    opened = await _open(request, waas.parse_notification)
    if isinstance(opened, web.Response):
        return opened
    _, body, notification = opened
    key = waas.idempotency_key(notification)
    event = event_for(request, waas.PROVIDER, notification.side.value, key, body, notification)
    outcome = await hand_off(request, event)
    return _answer(waas.SUCCESS) if outcome is not None else _answer(waas.FAILURE, 503)


async def waas_withdraw_confirm(request: web.Request) -> web.StreamResponse:
    opened = await _open(request, waas.parse_withdraw_confirmation)
    if isinstance(opened, web.Response):
        return opened
    config, body, confirmation = opened
    question = waas.confirmation_request(confirmation)
    decision = decide_now(request, waas.PROVIDER, question, need_order=True)
    if config.merchant_private_key is None:
        reason = Reason("no_merchant_key", "", "CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE is not set")
        decision = Decision(Action.REJECT, (reason,), decision.policy_version)
    key = f"confirm:{confirmation.request_id}"
    event = event_for(request, waas.PROVIDER, "withdraw.confirm", key, body, confirmation, decision)
    approved = await answer_once(request, event, decision, waas.confirmation_fingerprint(confirmation))
    if not approved or config.merchant_private_key is None:
        return _answer(waas.FAILURE)  # [I] anything but the right check_sum refuses
    # The memo holds the verdict; the answer echoes this request's own check_sum and time. Its RSA
    # private operation (~0.3 ms in libcrypto, without the GIL) runs off the event loop, while the
    # order is marked consumed.
    loop = asyncio.get_running_loop()
    answering = loop.run_in_executor(None, waas.confirmation_answer, confirmation, config.merchant_private_key)
    await _consume_order(request, confirmation.request_id)
    return web.Response(body=await answering, content_type="application/json")


async def _consume_order(request: web.Request, order_ref: str) -> None:
    # Idempotent: a retried confirmation finds the order consumed already, and gets the
    # remembered approval anyway. The approval stands either way (it is remembered), so a
    # registry we cannot reach now is logged, not answered.
    orders = request.app.get(ORDERS)
    if orders is None:
        return
    try:
        await orders.confirm(waas.PROVIDER, order_ref)
    except (RedisError, OSError) as e:
        logger.error("chainup_waas %s: approved, but the order could not be marked consumed (%s)", order_ref, e)


async def _open(
    request: web.Request, parse: Callable[[object], _T]
) -> tuple[ChainupWaasSettings, bytes, _T] | web.Response:
    """Read and cap the form, check the app id, decrypt `data` (authenticity itself), `parse` it;
    or the FAILURE answer, counted."""
    config = request.app[SETTINGS].providers.chainup_waas
    assert config is not None  # the routes exist only when ChainUp WaaS is configured
    body = await read_body(request, waas.PROVIDER)
    try:
        if len(body) > config.max_body_bytes:
            raise InvalidInput("body", f"larger than {config.max_body_bytes} bytes")
        form = waas.parse_form(_form_fields(body))
    except InvalidInput:
        count(request, waas.PROVIDER, "invalid")
        return _answer(waas.FAILURE, 400)
    if not hmac.compare_digest(form.app_id.encode(), config.app_id.encode()):
        count(request, waas.PROVIDER, "unknown_app")
        return _answer(waas.FAILURE, 403)
    try:
        # A `+` of standard Base64 sent unescaped reads as a space in a form; Base64 has no spaces.
        data = waas.decrypt(form.data.replace(" ", "+"), config.public_key)
    except InvalidInput:
        count(request, waas.PROVIDER, "undecryptable")
        return _answer(waas.FAILURE, 403)
    try:
        return config, body, parse(data)
    except InvalidInput:
        count(request, waas.PROVIDER, "invalid")
        return _answer(waas.FAILURE, 400)


def _form_fields(body: bytes) -> dict[str, object]:
    """The urlencoded form from the exact bytes; a field given twice is refused, not guessed at."""
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("body", "not an application/x-www-form-urlencoded form") from None
    fields: dict[str, object] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidInput(name, "given more than once")
        fields[name] = value
    return fields
