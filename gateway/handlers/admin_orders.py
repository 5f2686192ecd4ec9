"""Admin API for the expected-order registry: `POST /admin/orders`, `GET /admin/orders`.

The merchant's backend registers each withdrawal it really initiated before the provider asks
about it. Bearer `CALLGATE_ADMIN_TOKEN`, compared in constant time; without a configured token the
admin API does not exist (404), like a provider without settings.
"""

from __future__ import annotations

import hmac
import json
import logging

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from gateway.handlers.admin_common import query_limit
from gateway.keys import REDIS, REDIS_KEYS, SETTINGS
from gateway.live import DATABASE
from gateway.middleware import error_response
from shared.errors import InvalidInput
from shared.orders import OrderConflict, StoredOrder, list_orders, order_to_data, parse_order, register

logger = logging.getLogger(__name__)

_UNAVAILABLE = (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def refusal(request: web.Request) -> web.Response | None:
    """The answer to a request without the admin bearer token, or None when it carries it."""
    token = request.app[SETTINGS].admin_token
    if not token:
        return error_response(404, "not_found", "the admin API is disabled (set CALLGATE_ADMIN_TOKEN)")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = error_response(401, "unauthorized", "a valid bearer token is required")
        response.headers["WWW-Authenticate"] = 'Bearer realm="callgate-admin"'
        return response
    return None


async def add_order(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    try:
        order = parse_order(json.loads(await request.read()))
    except ValueError:
        return error_response(400, "invalid", "the body is not JSON")
    except InvalidInput as e:
        return error_response(400, "invalid", str(e))
    try:
        stored, created = await register(request.app[DATABASE], request.app[REDIS], request.app[REDIS_KEYS], order)
    except OrderConflict as e:
        return error_response(409, "conflict", str(e))
    except _UNAVAILABLE as e:
        logger.warning("order registration unavailable: %s", type(e).__name__)
        return error_response(503, "unavailable", "the registry cannot be written now; retry")
    return web.json_response(_view(stored), status=201 if created else 200)


async def get_orders(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    provider = request.query.get("provider") or None
    if isinstance(limit := query_limit(request), web.Response):
        return limit
    try:
        orders = await list_orders(request.app[DATABASE], provider=provider, limit=limit)
    except _UNAVAILABLE as e:
        logger.warning("order listing unavailable: %s", type(e).__name__)
        return error_response(503, "unavailable", "the registry cannot be read now; retry")
    return web.json_response({"orders": [_view(stored) for stored in orders]})


def _view(stored: StoredOrder) -> dict[str, object]:
    return {**order_to_data(stored.order), "created_at": stored.created_at, "confirmed_at": stored.confirmed_at}
