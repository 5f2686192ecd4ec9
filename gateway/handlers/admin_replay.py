"""Admin API for replays, the same operations as `callgate replay`:

- `POST /admin/replay/notifications` `{ids?, subscriber?, since?, until?, statuses?}`: deliver the
  selected notifications again (same `webhook-id`, from attempt 1); every given criterion must
  hold, at least one is required. `statuses` defaults to every status when `ids` are given (as
  the CLI does), else to `["dead"]`;
- `GET /admin/dead-letters[?job=...&limit=N]`: the open dead letters, newest first (to pick ids);
- `POST /admin/replay/dead-letters` `{ids}`: re-enqueue those dead letters (a dead delivery is
  replayed as its notification).

Bearer `CALLGATE_ADMIN_TOKEN`, as every `/admin` route. Replays enqueue under stable job ids, so
the same request sent twice queues each attempt once.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from gateway import replays
from gateway.handlers.admin_common import (
    POSTGRES_DOWN,
    json_object,
    postgres_answered,
    query_limit,
    text,
    texts,
    unavailable,
)
from gateway.handlers.admin_orders import refusal
from gateway.keys import INGESTOR
from gateway.live import DATABASE
from gateway.middleware import error_response
from shared.errors import InvalidInput
from shared.notify import replay
from shared.times import parse_time

logger = logging.getLogger(__name__)

MAX_IDS = 1000


async def replay_notifications(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    data = await json_object(request, "ids", "subscriber", "since", "until", "statuses")
    if isinstance(data, web.Response):
        return data
    try:
        selection = _selection(data)
    except InvalidInput as e:
        return error_response(400, "invalid", str(e))
    app = request.app
    try:
        picked = await replays.notifications(app[DATABASE], app[INGESTOR].queue, selection)
    except RedisError as e:
        logger.warning("notification replay: rows reset, enqueue failed: %s", type(e).__name__)
        detail = 'reset but not enqueued: once Redis is back, send the same request with "statuses": ["pending"]'
        return error_response(503, "unavailable", detail)
    except POSTGRES_DOWN as e:
        return unavailable(request, "notification replay", e)
    postgres_answered(request)
    logger.info("admin API replayed %d notifications", len(picked))
    return web.json_response({"replayed": [{"id": n, "attempt": a} for n, a in picked], "count": len(picked)})


async def list_dead_letters(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    job = request.query.get("job") or None
    if isinstance(limit := query_limit(request), web.Response):
        return limit
    try:
        async with request.app[DATABASE].acquire() as conn:
            letters = await replays.open_letters(conn, job=job, limit=limit)
    except POSTGRES_DOWN as e:
        return unavailable(request, "dead letter list", e)
    postgres_answered(request)
    views = [
        {"id": x.id, "job": x.job, "ref": x.ref, "reason": x.reason, "created_at": x.created_at.isoformat()}
        for x in letters
    ]
    return web.json_response({"dead_letters": views})


async def replay_dead_letters(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    data = await json_object(request, "ids")
    if isinstance(data, web.Response):
        return data
    ids = data.get("ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
        return error_response(400, "invalid", f"ids: a list of 1 to {MAX_IDS} dead letter ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 < i < 2**63 for i in ids):
        return error_response(400, "invalid", "ids: every item a positive integer")
    app = request.app
    try:
        done = await replays.letters(app[DATABASE], app[INGESTOR].queue, ids)
    except RedisError as e:
        logger.warning("dead letter replay: marked replayed, enqueue failed: %s", type(e).__name__)
        return error_response(
            503, "unavailable", "marked replayed but not enqueued: replay them with `callgate replay`"
        )
    except POSTGRES_DOWN as e:
        return unavailable(request, "dead letter replay", e)
    postgres_answered(request)
    logger.info("admin API replayed %d dead letters", len(done.replayed))
    return web.json_response({"replayed": [{"id": i, "job": j} for i, j in done.replayed], "not_open": done.not_open})


def _selection(data: dict[str, Any]) -> replay.Selection:
    ids = texts(data, "ids", max_items=MAX_IDS)
    subscriber = text(data, "subscriber", max_length=200)
    since, until = _when(data, "since"), _when(data, "until")
    if ids is None and subscriber is None and since is None and until is None:
        raise InvalidInput("ids", "give at least one of ids, subscriber, since, until")
    if since is not None and until is not None and since >= until:
        raise InvalidInput("until", "must be after since")
    statuses = texts(data, "statuses", max_items=len(replay.STATUSES))
    if statuses is not None and (not statuses or not set(statuses) <= set(replay.STATUSES)):
        raise InvalidInput("statuses", f"some of {list(replay.STATUSES)}")
    return replay.Selection(ids=ids, subscriber=subscriber, since=since, until=until, statuses=statuses)


def _when(data: dict[str, Any], field: str) -> dt.datetime | None:
    value = text(data, field, max_length=64)
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise InvalidInput(field, "an ISO 8601 time, e.g. 2026-11-22T03:00:00Z") from None
