"""A real downstream receiver for notification tests: records every request, fails on demand.

Each subscriber gets its own path (`/<name>`); `Receiver.behave(name, ...)` sets what that path
answers: a status (with optional Retry-After), a delay, or a hook run before answering.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

Hook = Callable[["Received"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass(slots=True)
class Behaviour:
    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0
    hook: Hook | None = None


@dataclass
class Receiver:
    received: list[Received] = field(default_factory=list)
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    url: str = ""
    _runner: web.AppRunner | None = None

    def behave(self, name: str, **kwargs: object) -> None:
        self.behaviours[name] = Behaviour(**kwargs)  # type: ignore[arg-type]

    def at(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/{name}"]

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        item = Received(request.path, {k.lower(): v for k, v in request.headers.items()}, body, time.time())
        self.received.append(item)
        behaviour = self.behaviours.get(request.match_info["name"], Behaviour())
        if behaviour.hook is not None:
            await behaviour.hook(item)
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        headers = {"Retry-After": behaviour.retry_after} if behaviour.retry_after else {}
        return web.Response(status=behaviour.status, text="ok" if behaviour.status < 300 else "nope", headers=headers)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def refused_url() -> str:
    """A URL nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone-away"
