"""Cobo UCW TSS request callback: `POST /api/v1/wallets/{wallet_uuid}/tss/callback`.

Every answer, refusals included, is the seed's envelope `{result, success, suggestion, message,
meta}`. The wallet is checked against the process's in-memory registry replica (Redis is asked
only about a wallet it does not know). The report is handed off for reconciliation (idempotency
key: wallet, request, status) through the batched ingest, and spooled when Redis is down, like
any callback; `result` is the row as currently known, read from the worker's Redis replica of it
(reads batched per loop iteration; empty when unknown or Redis is down): this route never queries
Postgres. With `CALLGATE_UCW_WAIT_MS` > 0 it waits, bounded, for the worker to store a WaaS
state newer than this report.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from aiohttp import web
from redis.exceptions import RedisError

from gateway.handlers.common import count, envelope, hand_off
from gateway.keys import REDIS, REDIS_KEYS, SETTINGS
from gateway.live import UCW_STATES, UCW_WALLETS
from shared.errors import InvalidInput
from shared.providers import cobo_ucw as ucw
from shared.providers.cobo_ucw_store import decode_state, read_state, state_key
from shared.providers.jsonfields import decode_json

_POLL_S = 0.02


def _answer(status: int, message: str, *, suggestion: str = "") -> web.Response:
    return web.json_response(ucw.error_envelope(message, suggestion=suggestion), status=status)


def _key_ok(given: str | None, keys: tuple[str, ...]) -> bool:
    if not given:
        return False
    # Compare against every key (no early exit): timing reveals neither a match nor which key.
    matches = [hmac.compare_digest(given.encode(), key.encode()) for key in keys]
    return any(matches)


async def tss_callback(request: web.Request) -> web.Response:
    config = request.app[SETTINGS].providers.cobo_ucw
    assert config is not None  # the route exists only when UCW is configured
    if not _key_ok(request.headers.get("X-API-Key"), config.api_keys):
        count(request, ucw.PROVIDER, "unauthorized")
        return _answer(401, "invalid or missing X-API-Key")
    try:
        body = await request.read()
        wallet_uuid = ucw.parse_wallet_uuid(request.match_info["wallet_uuid"])
        report = ucw.parse_tss_callback(decode_json(body))
    except web.HTTPRequestEntityTooLarge:
        count(request, ucw.PROVIDER, "too_large")
        return _answer(413, "request body exceeds the configured limit")
    except InvalidInput as e:
        count(request, ucw.PROVIDER, "invalid")
        return _answer(422, f"invalid request: {e}")
    return await _accept(request, wallet_uuid, report, body, config.wait_ms)


async def _accept(
    request: web.Request, wallet_uuid: str, report: ucw.TssCallback, body: bytes, wait_ms: int
) -> web.Response:
    try:
        vault_id = await request.app[UCW_WALLETS].find(wallet_uuid)
    except (RedisError, OSError):
        # Only for a wallet this process does not know: "not found" cannot be told without Redis.
        count(request, ucw.PROVIDER, "unavailable")
        return _answer(503, "cannot record the report now; please retry")
    if vault_id is None:
        count(request, ucw.PROVIDER, "unknown_wallet")
        return _answer(404, f"wallet {wallet_uuid} not found", suggestion="register it: callgate wallets add")
    # The row as known (batched with the other requests' reads, one MGET), read while the report is
    # handed off: when Redis hangs, the answer waits out one Redis timeout, not two in a row.
    key = state_key(request.app[REDIS_KEYS], wallet_uuid, report.tss_request_id)
    reading = asyncio.ensure_future(request.app[UCW_STATES].get(key))
    payload = {"wallet_uuid": wallet_uuid, "vault_id": vault_id, "tss_request_id": report.tss_request_id}
    event = envelope(
        request,
        provider=ucw.PROVIDER,
        kind="tss_callback",
        idempotency_key=ucw.idempotency_key(wallet_uuid, report),
        body=body,
        payload={**payload, "status": report.status},
    )
    outcome = await hand_off(request, event)
    known = decode_state(await reading)  # best effort: never raises, absent when unknown
    if outcome is None:
        return _answer(503, "cannot record the report now; please retry")
    if wait_ms > 0:
        known = await _wait_for_sync(request, wallet_uuid, report.tss_request_id, event.received_at, wait_ms) or known
    result = known[0] if known else ucw.CallbackResult(report.tss_request_id, "", "")
    return web.json_response(ucw.envelope(result))


async def _wait_for_sync(
    request: web.Request, wallet_uuid: str, tss_request_id: str, since: float, wait_ms: int
) -> tuple[ucw.CallbackResult, float | None] | None:
    """Poll the replica until WaaS was read after `since`, for at most `wait_ms`; the last value seen."""
    deadline = time.monotonic() + wait_ms / 1000
    latest = None
    while time.monotonic() < deadline:
        await asyncio.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))
        try:
            latest = await read_state(request.app[REDIS], request.app[REDIS_KEYS], wallet_uuid, tss_request_id)
        except (RedisError, OSError):
            return None  # the report is recorded; answer with what was known before
        if latest is not None and latest[1] is not None and latest[1] >= since:
            return latest
    return latest
