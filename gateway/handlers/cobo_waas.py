"""Cobo WaaS 2.0 webhooks: `POST /cobo/waas/webhooks`.

The signature (Ed25519 over double SHA-256 of `raw_body|timestamp`, either header spelling) is
checked on the raw bytes before parsing. `wallets.mpc.tss_request.*` events are handed off and
trigger the same reconciliation as a UCW report; the event's own status is not stored as the
state (the worker re-reads WaaS). Other event types are acknowledged and ignored: Cobo retries
anything but 200/201, and one endpoint receives every type the subscription selects.
"""

from __future__ import annotations

from aiohttp import web

from gateway.handlers.common import count, envelope, hand_off, read_body
from gateway.keys import SETTINGS
from gateway.middleware import error_response
from shared.errors import InvalidInput, Unauthorized
from shared.providers.jsonfields import decode_json
from shared.waas.cobo_auth import verify_webhook
from shared.waas.cobo_models import parse_tss_request_event

PROVIDER = "cobo_waas"


async def webhook(request: web.Request) -> web.Response:
    config = request.app[SETTINGS].providers.cobo_waas
    assert config is not None  # the route exists only when WaaS is configured
    body = await read_body(request, PROVIDER)
    try:
        verify_webhook(config.response_public_key, request.headers, body)
        event = parse_tss_request_event(decode_json(body))
    except Unauthorized as e:
        count(request, PROVIDER, "unauthorized")
        return error_response(401, "unauthorized", str(e))
    except InvalidInput as e:
        count(request, PROVIDER, "invalid")
        return error_response(400, "invalid", str(e))
    if event is None:
        count(request, PROVIDER, "ignored")
        return web.json_response({"status": "ignored"})
    payload = {"tss_request_id": event.request.tss_request_id, "status": event.request.status_raw}
    # Retries of one event keep its event_id: that is the duplicate to recognise.
    key = event.event_id
    outcome = await hand_off(
        request, envelope(request, provider=PROVIDER, kind=event.type, idempotency_key=key, body=body, payload=payload)
    )
    if outcome is None:
        return error_response(503, "unavailable", "cannot record the event now; it will be retried")
    return web.json_response({"status": outcome.value})
