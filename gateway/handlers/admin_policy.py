"""Admin API for the policy lifecycle, the same operations as `callgate policy ...`:

- `GET /admin/policy`: the active version (with its text), the shadow in effect, the latest versions;
- `POST /admin/policy[?shadow=true]`: publish the body (YAML or JSON) as the next version;
- `POST /admin/policy/test[?since=24h&provider=...&max_changed=N|max_changed_pct=P]`: the body as a
  candidate, decided on the recorded decisions of the window (the `policy test --format json` report,
  plus `exceeded` when a threshold is given) in a helper process, one test at a time per gateway
  process, at most `gateway.policy_test_pool.MAX_REQUESTS` decisions (400 above);
- `POST /admin/policy/promote`, `POST /admin/policy/rollback`;
- `GET /admin/policy/diff?old=A&new=B`: the rule-level difference.

Bearer `CALLGATE_ADMIN_TOKEN` (constant-time compare; 404 when none is configured), as `/admin/orders`.
Bodies are capped by the gateway's `CALLGATE_MAX_BODY_BYTES`: a larger document (100k-address
lists) is published with the CLI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from gateway.handlers.admin_orders import refusal
from gateway.keys import REDIS, REDIS_KEYS
from gateway.live import DATABASE
from gateway.middleware import error_response
from gateway.policy_test_pool import POLICY_TESTS
from shared.errors import PolicyError
from shared.policy.diff import diff_data, diff_versions
from shared.policy.replay import WindowTooLarge, parse_window, window_data
from shared.policy.store import (
    Published,
    StoredPolicy,
    list_versions,
    load_active,
    load_version,
    promote,
    publish,
    rollback,
    versions_in_effect,
)

logger = logging.getLogger(__name__)

_UNAVAILABLE = (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_BY = "admin-api"


async def show(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    pool = request.app[DATABASE]
    try:
        active = await load_active(pool)
        _, shadow_version = await versions_in_effect(pool)
        shadow = None if shadow_version is None else await load_version(pool, shadow_version)
        versions = await list_versions(pool)
    except _UNAVAILABLE as e:
        return _unavailable("policy show", e)
    return web.json_response(
        {
            "active": None if active is None else {**_view(active), "source": active.source},
            "shadow": None if shadow is None else {**_view(shadow), "source": shadow.source},
            "versions": [_view(p) for p in versions],
        }
    )


async def publish_policy(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    shadow = request.query.get("shadow", "false")
    if shadow not in ("true", "false"):
        return error_response(400, "invalid", "shadow: true or false")
    text = await _text(request)
    if isinstance(text, web.Response):
        return text
    app = request.app
    step = publish(app[DATABASE], app[REDIS], app[REDIS_KEYS], text, published_by=_BY, shadow=shadow == "true")
    return await _lifecycle(step, "policy publish")


async def promote_shadow(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    app = request.app
    return await _lifecycle(promote(app[DATABASE], app[REDIS], app[REDIS_KEYS], published_by=_BY), "policy promote")


async def roll_back(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    app = request.app
    return await _lifecycle(rollback(app[DATABASE], app[REDIS], app[REDIS_KEYS], published_by=_BY), "policy rollback")


async def try_candidate(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    query = request.query
    try:
        since = parse_window(query.get("since", "24h"))
        max_changed, max_pct = _threshold(query.get("max_changed")), _threshold(query.get("max_changed_pct"))
    except ValueError:
        return error_response(400, "invalid", "since: e.g. 30m, 24h, 7d; max_changed, max_changed_pct: numbers")
    text = await _text(request)
    if isinstance(text, web.Response):
        return text
    tests, pool = request.app[POLICY_TESTS], request.app[DATABASE]
    try:
        # Compiled and decided in the helper process; a second test waits for the first.
        report = await tests.run(pool, text, since=time.time() - since, providers=query.getall("provider", []))
    except PolicyError as e:
        return error_response(422, "refused", str(e))
    except WindowTooLarge as e:
        detail = f"since: {e}; narrow the window or the providers, or run `callgate policy test`"
        return error_response(400, "invalid", detail)
    except _UNAVAILABLE as e:
        return _unavailable("policy test", e)
    return web.json_response({**window_data(report), "exceeded": report.exceeds(max_changed, max_pct)})


async def diff(request: web.Request) -> web.Response:
    if (refused := refusal(request)) is not None:
        return refused
    old, new = request.query.get("old", ""), request.query.get("new", "")
    if not (old.isascii() and old.isdigit() and new.isascii() and new.isdigit()):
        return error_response(400, "invalid", "old and new: version numbers")
    try:
        difference = await diff_versions(request.app[DATABASE], int(old), int(new))
    except PolicyError as e:
        return error_response(404, "not_found", str(e))
    except _UNAVAILABLE as e:
        return _unavailable("policy diff", e)
    return web.json_response(diff_data(difference))


async def _lifecycle(step: Awaitable[Published], what: str) -> web.Response:
    try:
        result = await step
    except PolicyError as e:
        status = 409 if e.path == "version" else 422  # nothing to promote/roll back vs a refused document
        return error_response(status, "refused", str(e))
    except _UNAVAILABLE as e:
        return _unavailable(what, e)
    body = {**_view(result.policy), "created": result.created, "announced": result.announced}
    return web.json_response(body, status=201 if result.created else 200)


async def _text(request: web.Request) -> str | web.Response:
    try:
        return (await request.read()).decode("utf-8")
    except UnicodeDecodeError:
        return error_response(400, "invalid", "the body is not UTF-8 text")


def _threshold(text: str | None) -> float | None:
    """None when absent; ValueError unless a finite non-negative number."""
    if text is None:
        return None
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


def _unavailable(what: str, e: BaseException) -> web.Response:
    logger.warning("%s unavailable: %s", what, type(e).__name__)
    return error_response(503, "unavailable", "the policy store cannot be reached now; retry")


def _view(p: StoredPolicy) -> dict[str, object]:
    return {
        "version": p.version,
        "state": p.state,
        "sha256": p.sha256,
        "published_at": p.published_at,
        "published_by": p.published_by,
    }
