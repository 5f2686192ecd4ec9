"""The console application: its own aiohttp app and port, reading Postgres (never the callback path).

`callgate console` runs it; see docs/console.md for why it is not part of the gateway process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources

from aiohttp import web
from arq import create_pool as create_arq_pool
from arq.connections import RedisSettings

from gateway.console import forms, views
from gateway.console.keys import OPTIONS, POOL, REDIS, SESSION_KEY, TEMPLATES, ConsoleOptions
from gateway.console.render import environment
from gateway.console.session import derive_key, guard
from gateway.keys import SETTINGS
from shared.config import Settings
from shared.db import create_pool
from shared.errors import ConfigError
from shared.queue import deserialize_job, serialize_job

_CSS = (resources.files("gateway.console") / "templates" / "console.css").read_bytes


def create_console_app(settings: Settings, options: ConsoleOptions) -> web.Application:
    if not settings.admin_token:
        raise ConfigError("CALLGATE_ADMIN_TOKEN", "the console logs in with the admin token; set it")
    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[OPTIONS] = options
    app[SESSION_KEY] = derive_key(settings.admin_token)
    app[TEMPLATES] = environment()
    app.cleanup_ctx.append(_pool)
    app.cleanup_ctx.append(_redis)
    _routes(app)
    return app


def _routes(app: web.Application) -> None:
    app.router.add_get("/login", forms.login_page)
    app.router.add_post("/login", forms.login)
    app.router.add_post("/logout", forms.logout)
    app.router.add_get("/console.css", _css)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/", views.overview)
    app.router.add_get("/events", views.event_list)
    app.router.add_get("/events/{id}", views.event)
    app.router.add_get("/dead-letters", views.dead_letters)
    app.router.add_post("/dead-letters/replay", forms.replay)
    app.router.add_post("/dead-letters/replay-job", forms.replay_job)
    app.router.add_get("/subscribers", views.subscriber_list)
    app.router.add_post("/subscribers/enable", forms.enable)
    app.router.add_post("/subscribers/disable", forms.disable)
    app.router.add_get("/policies", views.policies)
    app.router.add_get("/tss", views.tss)


async def _css(request: web.Request) -> web.Response:
    return web.Response(body=_CSS(), content_type="text/css")


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _pool(app: web.Application) -> AsyncIterator[None]:
    # A small pool of its own: console reads never take connections from the workers.
    app[POOL] = await create_pool(app[SETTINGS].database_url, min_size=1, max_size=4)
    yield
    await app[POOL].close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[REDIS] = await create_arq_pool(
        RedisSettings.from_dsn(settings.redis_url),
        default_queue_name=settings.queue_name,
        job_serializer=serialize_job,
        job_deserializer=deserialize_job,
    )
    yield
    await app[REDIS].aclose()


def serve(settings: Settings, options: ConsoleOptions) -> None:
    """Run the console until interrupted (`callgate console`)."""
    web.run_app(create_console_app(settings, options), host=options.host, port=options.port, print=None)
