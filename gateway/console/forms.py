"""The console's forms (POST): log in and out, replay dead letters, enable and disable subscribers.

Every POST has passed the CSRF check in `session.guard` before it gets here; each answers with a
redirect (post/redirect/get), so a reload never repeats an action.
"""

from __future__ import annotations

from aiohttp import web

from gateway.console import actions
from gateway.console.keys import OPTIONS, POOL, REDIS
from gateway.console.render import render, see_other
from gateway.console.session import SESSION, current, new_session, set_cookie, token_matches
from gateway.keys import SETTINGS


async def login_page(request: web.Request) -> web.Response:
    session = current(request)
    if session is not None and session.admin:
        raise web.HTTPSeeOther("/")
    return render(request, "login.html", title="Log in", error=None)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    admin_token = request.app[SETTINGS].admin_token or ""
    if not admin_token or not token_matches(str(form.get("token", "")), admin_token):
        response = render(request, "login.html", title="Log in", error="That is not the admin token.")
        response.set_status(401)
        return response
    # A new nonce on login: a session id planted before login is worth nothing after it.
    session = new_session(admin=True, seconds=request.app[OPTIONS].session_hours * 3600)
    request[SESSION] = session
    response = web.Response(status=303, headers={"Location": "/"})
    set_cookie(request, response, session)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    session = new_session(admin=False, seconds=60)
    request[SESSION] = session
    response = web.Response(status=303, headers={"Location": "/login"})
    set_cookie(request, response, session)
    return response


def _back(form_value: object, default: str) -> str:
    # Only our own paths: never an open redirect.
    back = str(form_value or "")
    return back if back.startswith("/") and not back.startswith("//") and len(back) < 200 else default


async def replay(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    one = str(form.get("one", ""))
    ids = [one] if one else [str(v) for v in form.getall("id", [])]
    subscriber = str(form.get("subscriber", "")) or None
    if not ids and subscriber is None:
        raise see_other("/dead-letters", "Nothing selected.")
    count = await actions.replay_notifications(
        request.app[POOL], request.app[REDIS], ids=ids or None, subscriber=None if ids else subscriber
    )
    raise see_other(_back(form.get("back"), "/dead-letters"), f"Replayed {count} notification(s).")


async def replay_job(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    job = str(form.get("job", ""))
    if not job:
        raise see_other("/dead-letters", "No job named.")
    count = await actions.replay_job_letters(request.app[POOL], request.app[REDIS], job)
    raise see_other("/dead-letters", f"Re-enqueued {count} dead letter(s) of {job}.")


async def enable(request: web.Request) -> web.StreamResponse:
    return await _set_enabled(request, enabled=True)


async def disable(request: web.Request) -> web.StreamResponse:
    return await _set_enabled(request, enabled=False)


async def _set_enabled(request: web.Request, *, enabled: bool) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name", ""))
    found = await actions.set_subscriber(request.app[POOL], name, enabled=enabled)
    verb = "enabled" if enabled else "disabled"
    raise see_other("/subscribers", f"{name}: {verb}." if found else f"No subscriber named {name!r}.")
