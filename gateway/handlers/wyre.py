"""Wyre v3 wallet callbacks: `POST /wyre/v3/wallet-callbacks/{path_token}`.

Wyre sends once and never retries, so 200 is answered only once the callback is in Redis or in
the fsynced local spool; 503 only when neither could take it.
"""

from __future__ import annotations

from aiohttp import web

from gateway.handlers.common import count, envelope, hand_off, read_body
from gateway.keys import SETTINGS
from gateway.middleware import error_response, json_body
from shared.errors import InvalidInput, Unauthorized
from shared.providers import wyre


async def wallet_callback(request: web.Request) -> web.Response:
    config = request.app[SETTINGS].providers.wyre
    assert config is not None  # the route exists only when Wyre is configured
    try:
        wyre.check_path_token(request.match_info["path_token"], config.path_token)
    except Unauthorized:
        count(request, wyre.PROVIDER, "unauthorized")
        # An unknown path and a wrong token look the same from outside.
        return error_response(404, "not_found", "no such route")
    body = await read_body(request, wyre.PROVIDER)
    try:
        if config.signing_secret is not None:
            wyre.check_signature(body, request.headers.get("X-Api-Signature"), config.signing_secret)
        tx = wyre.parse_body(body)
    except Unauthorized as e:
        count(request, wyre.PROVIDER, "unauthorized")
        return error_response(401, "unauthorized", str(e))
    except InvalidInput as e:
        count(request, wyre.PROVIDER, "invalid")
        return error_response(400, "invalid", str(e))
    event = envelope(request, provider=wyre.PROVIDER, kind=tx.kind, idempotency_key=tx.idempotency_key, body=body)
    outcome = await hand_off(request, event)
    if outcome is None:
        return error_response(503, "unavailable", "cannot record the callback now; please resend")
    return json_body({"status": outcome.value, "id": tx.id})
