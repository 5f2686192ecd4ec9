"""What the subscriber and replay admin handlers share: the JSON body read strictly, typed field
checks that name the field, the 503 when a store is away, and one counter for every admin route.

Bearer auth is `admin_orders.refusal`, as for every `/admin` route.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from gateway.health import POSTGRES_HEALTH
from gateway.keys import METRICS
from gateway.middleware import error_response
from shared.errors import InvalidInput
from shared.health import REDIS_ERRORS

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# PostgreSQL away: shared.health's set without asyncpg's InternalClientError, which is a bug to
# report as a 500, not an outage to answer with 503.
POSTGRES_DOWN = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
REDIS_DOWN = REDIS_ERRORS
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_OUTCOMES = {400: "invalid", 401: "unauthorized", 404: "not_found", 409: "conflict", 413: "too_large"}
_OUTCOMES |= {422: "refused", 503: "unavailable"}
MAX_LIST = 1000  # rows a list route answers at most


def counted(handler: Handler) -> Handler:
    """Count an admin route's answers by outcome (`callgate_admin_requests_total`)."""

    @functools.wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        outcome = "error"
        try:
            response = await handler(request)
            outcome = "ok" if response.status < 300 else _OUTCOMES.get(response.status, "error")
            return response
        finally:
            request.app[METRICS].admin_requests.labels(request.match_info.route.name or "", outcome).inc()

    return run


async def json_object(request: web.Request, *fields: str) -> dict[str, Any] | web.Response:
    """The body as a JSON object with no fields but `fields` (an empty body is `{}`), or the 400."""
    raw = await request.read()
    try:
        data = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return error_response(400, "invalid", "the body is not JSON")
    if not isinstance(data, dict):
        return error_response(400, "invalid", "the body must be a JSON object")
    if unknown := sorted(set(data) - set(fields)):
        return error_response(400, "invalid", f"unknown fields {unknown}; expected some of {sorted(fields)}")
    return data


def query_limit(request: web.Request, *, default: int = 100) -> int | web.Response:
    """The `limit` query parameter of a list route (1 to MAX_LIST, `default` when absent), or the 400."""
    limit = request.query.get("limit", str(default))
    if not limit.isascii() or not limit.isdigit() or not 1 <= int(limit) <= MAX_LIST:
        return error_response(400, "invalid", f"limit: an integer from 1 to {MAX_LIST}")
    return int(limit)


def text(data: dict[str, Any], field: str, *, max_length: int) -> str | None:
    """An optional string field (None when absent); InvalidInput naming it when not a string."""
    return None if data.get(field) is None else required_text(data, field, max_length=max_length)


def required_text(data: dict[str, Any], field: str, *, max_length: int) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not 1 <= len(value) <= max_length:
        raise InvalidInput(field, f"a string of 1 to {max_length} characters")
    return value


def texts(data: dict[str, Any], field: str, *, max_items: int, max_length: int = 200) -> list[str] | None:
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_items:
        raise InvalidInput(field, f"a list of at most {max_items} strings")
    if not all(isinstance(v, str) and 1 <= len(v) <= max_length for v in value):
        raise InvalidInput(field, f"every item a string of 1 to {max_length} characters")
    return value


def unavailable(request: web.Request, what: str, e: BaseException) -> web.Response:
    """The 503 when PostgreSQL is away; it also moves `callgate_postgres_up` at once."""
    if (health := request.app.get(POSTGRES_HEALTH)) is not None:
        health.record(ok=False)
    logger.warning("%s unavailable: %s", what, type(e).__name__)
    return error_response(503, "unavailable", "the store cannot be reached now; retry")


def postgres_answered(request: web.Request) -> None:
    if (health := request.app.get(POSTGRES_HEALTH)) is not None:
        health.record(ok=True)
