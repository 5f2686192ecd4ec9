"""Console fixtures: the real console app on a local port, logged in (or not) with the admin token."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.console.app import create_console_app
from gateway.console.keys import ConsoleOptions
from shared.config import Settings
from shared.db import Pool
from tests.conftest import AiohttpClient

ADMIN_TOKEN = "console-admin-token-for-tests"
Client = TestClient[web.Request, web.Application]
Console = Callable[..., Awaitable[Client]]
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF token a rendered form carries."""
    found = _CSRF.search(page)
    assert found is not None, "no CSRF field in the page"
    return found.group(1)


async def log_in(client: Client, token: str = ADMIN_TOKEN) -> int:
    """Log in the way a browser does: load the form, post it with its CSRF token."""
    page = await (await client.get("/login")).text()
    response = await client.post("/login", data={"token": token, "csrf": csrf_of(page)}, allow_redirects=False)
    return response.status


async def post_form(client: Client, page_path: str, action: str, data: dict[str, str]) -> str:
    """Submit a form of `page_path` (taking its CSRF token); returns the page redirected to."""
    page = await (await client.get(page_path)).text()
    response = await client.post(action, data={**data, "csrf": csrf_of(page)})
    assert response.status == 200, response.status
    return await response.text()


@pytest.fixture
def console_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, admin_token=ADMIN_TOKEN)


@pytest.fixture
def console(aiohttp_client: AiohttpClient, console_settings: Settings, redis: Redis, db: Pool) -> Console:
    """Factory: a console client (logged in unless `login=False`); plain-http cookies unless `secure=True`."""

    async def start(*, login: bool = True, secure: bool = False, page_size: int = 50) -> Client:
        options = ConsoleOptions(insecure_cookie=not secure, page_size=page_size)
        client = await aiohttp_client(create_console_app(console_settings, options))
        if login:
            assert await log_in(client) == 303
        return client

    return start
