"""Transport-level abuse against a real gateway on a real socket: bodies aiohttp cannot decode,
huge headers, too many headers, and slow clients (slowloris)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import METRICS
from shared.config import Settings
from shared.metrics import Metrics
from tests.conftest import AiohttpClient, sample_value
from tests.faults.routes import ASYNC_ROUTES

Client = TestClient[web.Request, web.Application]
WYRE = next(r for r in ASYNC_ROUTES if r.provider == "wyre")


async def _client(settings: Settings, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_app(WYRE.configure(settings, None), metrics=Metrics()))


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-unknown"])
async def test_a_body_that_does_not_decode_is_a_400_not_a_500(
    encoding: str, settings: Settings, aiohttp_client: AiohttpClient
) -> None:
    client = await _client(settings, aiohttp_client)
    callback = WYRE.build("1001")
    response = await client.post(callback.path, data=callback.body, headers={"Content-Encoding": encoding})
    assert response.status == 400 or (encoding == "x-unknown" and response.status == 200)
    metrics = client.app[METRICS]
    assert sample_value(metrics, "callgate_callbacks_total", {"provider": "wyre", "outcome": "accepted"}) == (
        1 if response.status == 200 else 0
    )


async def _raw_exchange(port: int, request: bytes, read_limit_s: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), read_limit_s)
    finally:
        writer.close()


async def test_huge_and_numerous_headers_are_refused_with_4xx(
    settings: Settings, aiohttp_client: AiohttpClient
) -> None:
    client = await _client(settings, aiohttp_client)
    port = client.port
    assert port is not None
    huge = b"POST /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    answer = await _raw_exchange(port, huge, 5)
    assert answer.split(b" ")[1].startswith(b"4"), answer[:80]
    many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n"
    answer = await _raw_exchange(port, many, 5)
    assert answer.split(b" ")[1] in {b"200", b"400", b"431"}, answer[:80]
    long_line = b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = await _raw_exchange(port, long_line, 5)
    assert answer.split(b" ")[1].startswith(b"4"), answer[:80]
    assert (await client.get("/healthz")).status == 200
