"""The console's pages (GET): overview, events, one event, dead letters, subscribers, policies, TSS."""

from __future__ import annotations

import time

from aiohttp import web
from redis.exceptions import RedisError

from gateway.console import actions, events, operations
from gateway.console.keys import OPTIONS, POOL, REDIS
from gateway.console.render import local_value, render, text_param, time_param, with_query
from gateway.keys import SETTINGS
from shared.errors import PolicyError
from shared.jobs import DELIVER_NOTIFICATION
from shared.keys import RedisKeys
from shared.notify import subscribers
from shared.notify.breaker import breaker_states


async def overview(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        data = await operations.overview(conn)
    try:
        depth: int | None = int(await request.app[REDIS].zcard(request.app[SETTINGS].queue_name))
    except (RedisError, OSError):
        depth = None
    return render(request, "overview.html", title="Overview", section="/", o=data, queue_depth=depth)


def _filter(request: web.Request) -> events.EventFilter:
    before = None
    if cursor := text_param(request, "before", max_length=40):
        before = events.decode_cursor(cursor)
        if before is None:
            raise web.HTTPBadRequest(text="before: not a cursor this console made")
    return events.EventFilter(
        provider=text_param(request, "provider", max_length=64),
        kind=text_param(request, "kind", max_length=64),
        status=text_param(request, "status", max_length=64),
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        search=text_param(request, "q"),
        before=before,
    )


async def event_list(request: web.Request) -> web.Response:
    f = _filter(request)
    async with request.app[POOL].acquire() as conn:
        page = await events.list_events(conn, f, limit=request.app[OPTIONS].page_size)
        choices = {c: await events.distinct_values(conn, c) for c in events.FILTER_COLUMNS}
    next_url = None
    if page.next_cursor:
        query = {k: v for k, v in request.query.items() if k != "before"}
        next_url = with_query("/events", **query, before=page.next_cursor)
    return render(
        request,
        "events.html",
        title="Events",
        section="/events",
        f=f,
        page=page,
        next_url=next_url,
        since=local_value(f.since),
        until=local_value(f.until),
        providers=choices["provider"],
        kinds=choices["kind"],
        statuses=choices["status"],
    )


async def event(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="no such event")
    async with request.app[POOL].acquire() as conn:
        detail = await events.event_detail(conn, int(raw))
    if detail is None:
        raise web.HTTPNotFound(text="no such event")
    return render(request, "event.html", title=f"Event {detail.id}", section="/events", e=detail)


async def dead_letters(request: web.Request) -> web.Response:
    subscriber = text_param(request, "subscriber", max_length=200)
    before_text = text_param(request, "before", max_length=19)
    before = int(before_text) if before_text and before_text.isdigit() else None
    async with request.app[POOL].acquire() as conn:
        rows, cursor = await operations.open_dead_letters(
            conn, subscriber=subscriber, before=before, limit=request.app[OPTIONS].page_size
        )
        names = [s.name for s in await subscribers.list_all(conn)]
        counts = await operations.open_letter_counts(conn)
    other_jobs = [job for job, _ in counts if job != DELIVER_NOTIFICATION]
    next_url = with_query("/dead-letters", subscriber=subscriber, before=str(cursor)) if cursor else None
    return render(
        request,
        "dead_letters.html",
        title="Dead letters",
        section="/dead-letters",
        rows=rows,
        subscriber=subscriber,
        subscriber_names=names,
        next_url=next_url,
        other_jobs=other_jobs,
    )


async def subscriber_list(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        subs = await subscribers.list_all(conn)
    try:
        breakers = await breaker_states(
            request.app[REDIS], RedisKeys(request.app[SETTINGS].key_prefix), [s.id for s in subs], time.time()
        )
    except (RedisError, OSError):
        breakers = {}
    return render(
        request, "subscribers.html", title="Subscribers", section="/subscribers", subscribers=subs, breakers=breakers
    )


async def policies(request: web.Request) -> web.Response:
    new = _int_param(request, "diff")
    tested = _int_param(request, "test")
    async with request.app[POOL].acquire() as conn:
        versions = await operations.policy_versions(conn)
        diff = None if new is None else await operations.policy_diff(conn, new - 1, new)
    try:
        report = None if tested is None else await actions.test_policy(request.app[POOL], tested)
    except PolicyError as e:
        raise web.HTTPUnprocessableEntity(text=f"version {tested} does not compile: {e}") from None
    return render(
        request,
        "policies.html",
        title="Policies",
        section="/policies",
        versions=versions,
        diff=diff,
        diff_old=(new or 1) - 1,
        diff_new=new,
        tested=tested,
        report=report,
    )


def _int_param(request: web.Request, name: str) -> int | None:
    text = text_param(request, name, max_length=9)
    return int(text) if text and text.isdigit() else None


async def tss(request: web.Request) -> web.Response:
    disagreeing = request.query.get("disagreeing") == "1"
    open_only = request.query.get("open") == "1"
    before = None
    if cursor := text_param(request, "before", max_length=300):
        at, _, tss_id = cursor.partition("~")
        decoded = events.decode_cursor(at + "_0")
        before = None if decoded is None else (decoded[0], tss_id)
    async with request.app[POOL].acquire() as conn:
        rows, more = await operations.tss_requests(
            conn, disagreeing=disagreeing, open_only=open_only, before=before, limit=request.app[OPTIONS].page_size
        )
    next_url = None
    if more:
        cursor_text = events.encode_cursor(more[0], 0).partition("_")[0] + "~" + more[1]
        flags = {"disagreeing": "1" if disagreeing else None, "open": "1" if open_only else None}
        next_url = with_query("/tss", **flags, before=cursor_text)
    return render(
        request,
        "tss.html",
        title="TSS requests",
        section="/tss",
        rows=rows,
        disagreeing=disagreeing,
        open_only=open_only,
        next_url=next_url,
    )
