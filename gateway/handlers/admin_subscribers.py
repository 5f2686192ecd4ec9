"""Admin API for notification subscribers, the same operations as `callgate subscribers ...`:

- `GET /admin/subscribers`: every subscriber with its circuit breaker state, never a secret;
- `POST /admin/subscribers` `{name, url, event_types?, secret?}`: create; the answer carries the
  `whsec_` signing secret, the only time it is shown;
- `POST /admin/subscribers/{name}/disable` `{reason?}`, `.../enable`;
- `POST /admin/subscribers/{name}/rotate` `{overlap_hours?}`: a new secret, shown once; the old
  one keeps signing beside it for the overlap (24 h by default) so receivers can switch.

Bearer `CALLGATE_ADMIN_TOKEN`, as every `/admin` route.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from aiohttp import web

from gateway.handlers.admin_common import (
    NAME,
    POSTGRES_DOWN,
    REDIS_DOWN,
    json_object,
    postgres_answered,
    required_text,
    text,
    texts,
    unavailable,
)
from gateway.handlers.admin_orders import refusal
from gateway.keys import REDIS, REDIS_KEYS
from gateway.live import DATABASE
from gateway.middleware import error_response
from shared.errors import InvalidInput
from shared.notify import subscribers
from shared.notify.breaker import breaker_states
from shared.notify.signing import secret_key
from shared.notify.subscribers import Subscriber

logger = logging.getLogger(__name__)

MAX_OVERLAP_HOURS = 24 * 30
DEFAULT_OVERLAP_HOURS = 24.0


async def list_subscribers(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    try:
        async with request.app[DATABASE].acquire() as conn:
            found = await subscribers.list_all(conn)
    except POSTGRES_DOWN as e:
        return unavailable(request, "subscriber list", e)
    postgres_answered(request)
    breakers = await _breakers(request, [s.id for s in found])
    return web.json_response({"subscribers": [{**_view(s), "breaker": breakers.get(s.id)} for s in found]})


async def create(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    data = await json_object(request, "name", "url", "event_types", "secret")
    if isinstance(data, web.Response):
        return data
    try:
        name = required_text(data, "name", max_length=64)
        if not NAME.fullmatch(name):
            raise InvalidInput("name", "letters, digits, '.', '_' and '-', starting with a letter or digit")
        url = subscribers.check_url(required_text(data, "url", max_length=2000))
        types = texts(data, "event_types", max_items=100) or []
        secret = text(data, "secret", max_length=200)
        subscribers.check_event_types(types)
        if secret is not None:
            secret_key(secret)  # a whsec_ secret of 24 to 64 bytes, refused before any query
    except InvalidInput as e:
        return error_response(400, "invalid", str(e))
    try:
        async with request.app[DATABASE].acquire() as conn:
            if await subscribers.find(conn, name) is not None:
                return error_response(409, "conflict", f"a subscriber named {name!r} exists")
            created, secret = await subscribers.add(conn, name, url, event_types=types, secret=secret)
    except InvalidInput as e:
        # The name check above races with a concurrent create; the unique constraint settles it.
        return error_response(409 if e.field == "name" else 400, "conflict" if e.field == "name" else "invalid", str(e))
    except POSTGRES_DOWN as e:
        return unavailable(request, "subscriber create", e)
    postgres_answered(request)
    logger.info("subscriber %s (%d) created from the admin API", created.name, created.id)
    return web.json_response({**_view(created), "secret": secret}, status=201)


async def disable(request: web.Request) -> web.Response:
    return await _set_enabled(request, enabled=False)


async def enable(request: web.Request) -> web.Response:
    return await _set_enabled(request, enabled=True)


async def rotate(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    data = await json_object(request, "overlap_hours")
    if isinstance(data, web.Response):
        return data
    hours = data.get("overlap_hours", DEFAULT_OVERLAP_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 <= hours <= MAX_OVERLAP_HOURS:
        return error_response(400, "invalid", f"overlap_hours: a number from 0 to {MAX_OVERLAP_HOURS}")
    name = request.match_info["name"]
    try:
        async with request.app[DATABASE].acquire() as conn:
            secret = await subscribers.rotate_secret(conn, name, overlap=dt.timedelta(hours=hours))
            rotated = await subscribers.find(conn, name)
    except InvalidInput as e:
        return error_response(404, "not_found", str(e))
    except POSTGRES_DOWN as e:
        return unavailable(request, "subscriber rotate", e)
    postgres_answered(request)
    if rotated is None:  # deleted between the two statements
        return error_response(404, "not_found", f"no subscriber named {name!r}")
    logger.info("subscriber %s (%d) secret rotated from the admin API", rotated.name, rotated.id)
    return web.json_response({**_view(rotated), "secret": secret})


async def _set_enabled(request: web.Request, *, enabled: bool) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    data = await json_object(request, *(() if enabled else ("reason",)))
    if isinstance(data, web.Response):
        return data
    try:
        reason = text(data, "reason", max_length=500) or "disabled by an operator (admin API)"
    except InvalidInput as e:
        return error_response(400, "invalid", str(e))
    name = request.match_info["name"]
    try:
        async with request.app[DATABASE].acquire() as conn:
            found = await subscribers.set_enabled(conn, name, enabled, reason=reason)
            changed = await subscribers.find(conn, name) if found else None
    except POSTGRES_DOWN as e:
        return unavailable(request, "subscriber enable/disable", e)
    postgres_answered(request)
    if changed is None:
        return error_response(404, "not_found", f"no subscriber named {name!r}")
    return web.json_response(_view(changed))


async def _breakers(request: web.Request, ids: list[int]) -> dict[int, str]:
    """Each subscriber's breaker as the workers share it in Redis; {} when Redis is away."""
    try:
        return await breaker_states(request.app[REDIS], request.app[REDIS_KEYS], ids, time.time())
    except REDIS_DOWN as e:
        logger.warning("breaker states unavailable: %s", type(e).__name__)
        return {}


def _view(s: Subscriber) -> dict[str, Any]:
    expires = s.previous_secret_expires_at
    return {
        "id": s.id,
        "name": s.name,
        "url": s.url,
        "event_types": list(s.event_types),
        "enabled": s.enabled,
        "disabled_reason": s.disabled_reason,
        "created_at": s.created_at.isoformat(),
        "previous_secret_expires_at": None if expires is None else expires.isoformat(),
    }
