"""The gateway's server (gateway/server.py) on a real socket: what aiohttp's own error log keeps."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.keys import METRICS
from gateway.middleware import observe
from gateway.server import GatewayRunner
from shared.config import Settings
from shared.metrics import Metrics

UNDECODABLE = b"not gzip at all" * 64


async def _refused_unread(request: web.Request) -> web.Response:
    # As a provider handler refusing on its headers (a wrong API key): the body is never read.
    return web.json_response({"error": "unauthorized"}, status=401)


async def _poisoned_unread(request: web.Request) -> web.Response:
    # A real fault in the same place: the body stream breaks with an error nobody expects, and
    # aiohttp meets it when it drains the unread body after the answer.
    request.content.set_exception(RuntimeError("a real bug"))
    return web.Response(text="answered")


async def _reads_the_body(request: web.Request) -> web.Response:
    return web.Response(text=f"read {len(await request.read())} bytes")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The real middleware and GatewayRunner (HeadDeadlineHandler connections) on a free port."""
    app = web.Application(middlewares=[observe])
    app[METRICS] = Metrics()
    app.router.add_post("/refused", _refused_unread)
    app.router.add_post("/poisoned", _poisoned_unread)
    app.router.add_post("/reads", _reads_the_body)
    runner = GatewayRunner(app, Settings.from_env({}))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _exchange(port: int, request: bytes) -> bytes:
    """Send `request` and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_undecodable_body_left_unread_logs_no_traceback(port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    head = f"POST /refused HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {len(UNDECODABLE)}\r\n\r\n"
    answer = await _exchange(port, head.encode() + UNDECODABLE)
    assert answer.startswith(b"HTTP/1.1 401 ") and b"Connection: close" in answer
    assert _errors(caplog) == []
    quiet = [r for r in caplog.records if r.name == "gateway.server" and "did not decode" in r.getMessage()]
    assert [r.levelno for r in quiet] == [logging.DEBUG]


async def test_other_unhandled_exceptions_keep_their_error_traceback(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Chunked, so that nothing reads the body before the handler: aiohttp drains it afterwards.
    head = b"POST /poisoned HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = await _exchange(port, head + b"5\r\nhello\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    (error,) = _errors(caplog)
    assert (error.name, error.getMessage()) == ("aiohttp.server", "Unhandled exception")
    assert error.exc_info is not None and isinstance(error.exc_info[1], RuntimeError)


async def test_a_body_that_fails_to_decode_in_a_later_read_is_answered_not_left_hanging(port: int) -> None:
    """Headers in one read, a deflate body that cannot decode in the next: aiohttp's parser queues
    its refusal as the next message and leaves the handler's body stream open (the handler would
    wait forever, holding the connection: no head or body deadline covers it). The handler's read
    must fail instead, and the middleware answers 400 and closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /reads HTTP/1.1\r\nHost: x\r\nContent-Encoding: deflate\r\nContent-Length: 2\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler runs and waits for the body
        writer.write(b"{}")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b'"bad_body"' in answer and b"Connection: close" in answer
