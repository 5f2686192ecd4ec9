"""Templates (Jinja2 with autoescaping on every page) and the small parsers of query parameters."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from gateway.console.keys import TEMPLATES
from gateway.console.session import csrf_token, current
from shared.times import parse_time


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=True,  # every value, in every template: ids and payloads are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(request: web.Request, template: str, *, title: str, section: str = "", **values: Any) -> web.Response:
    session = current(request)
    page = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            title=title,
            section=section,
            admin=session is not None and session.admin,
            csrf=csrf_token(request),
            notice=request.query.get("notice", "")[:200],
            **values,
        )
    )
    return web.Response(text=page, content_type="text/html")


def text_param(request: web.Request, name: str, *, max_length: int = 200) -> str | None:
    """A query parameter, stripped; None when absent or empty; 400 when absurdly long."""
    value = request.query.get(name, "").strip()
    if len(value) > max_length:
        raise web.HTTPBadRequest(text=f"{name}: at most {max_length} characters")
    return value or None


def time_param(request: web.Request, name: str) -> dt.datetime | None:
    """A `datetime-local` value (or any ISO 8601 time), read as UTC when it has no offset."""
    value = text_param(request, name, max_length=40)
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected a date and time like 2026-01-31T12:00") from None


def local_value(value: dt.datetime | None) -> str:
    """A time as a `datetime-local` input shows it (UTC)."""
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


def with_query(path: str, **params: str | None) -> str:
    return path + "?" + urlencode({k: v for k, v in params.items() if v})


def see_other(path: str, notice: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(with_query(path, notice=notice))
