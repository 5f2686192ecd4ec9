"""Transport-level abuse against a real gateway on a real socket: huge headers, too many headers,
and slow clients (slowloris). Bodies aiohttp cannot decode (false Content-Encoding) are in the
mutation fuzzer (tests/fuzz/test_mutations.py): an aiohttp server that met one waits for its
shutdown timeout when closed, too long for a test of its own here."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import METRICS
from gateway.middleware import BODY_READ_TIMEOUT_S
from shared.config import Settings
from shared.metrics import Metrics
from tests.conftest import AiohttpClient, sample_value
from tests.faults.routes import ASYNC_ROUTES

Client = TestClient[web.Request, web.Application]
WYRE = next(r for r in ASYNC_ROUTES if r.provider == "wyre")


async def _client(settings: Settings, aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_app(WYRE.configure(settings, None), metrics=Metrics()))


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


async def test_a_slow_body_is_cut_off_and_the_gateway_keeps_answering(
    settings: Settings, aiohttp_client: AiohttpClient
) -> None:
    """Slowloris on the body: headers announce 2 KiB, then a byte now and then. The connection is
    answered 408 and closed at BODY_READ_TIMEOUT_S, and others are served meanwhile."""
    client = await _client(settings, aiohttp_client)
    assert client.port is not None
    callback = WYRE.build("1002")
    head = (
        f"POST {callback.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(callback.body)}\r\n\r\n"
    ).encode()
    slow = [await asyncio.open_connection("127.0.0.1", client.port) for _ in range(20)]
    started = time.monotonic()
    for _, writer in slow:
        writer.write(head + callback.body[:10])
    answers: list[tuple[float, bytes]] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def drip() -> None:
            for byte in callback.body[10:40]:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.5)

        dripping = asyncio.create_task(drip())
        answer = await asyncio.wait_for(reader.read(4096), BODY_READ_TIMEOUT_S + 5)
        answers.append((time.monotonic() - started, answer))
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)

    trickling = asyncio.gather(*(trickle(r, w) for r, w in slow))
    try:
        assert (await client.get("/healthz")).status == 200  # served while 20 bodies trickle
        await trickling
    finally:
        for _, writer in slow:
            writer.close()
    assert len(answers) == len(slow)
    assert all(a.startswith(b"HTTP/1.1 408") for _, a in answers), answers[:1]
    assert all(BODY_READ_TIMEOUT_S - 1 < t < BODY_READ_TIMEOUT_S + 3 for t, _ in answers), answers[:1]
    accepted = sample_value(
        client.app[METRICS], "callgate_callbacks_total", {"provider": "wyre", "outcome": "accepted"}
    )
    assert accepted == 0


async def test_a_body_that_arrives_in_time_is_unaffected(settings: Settings, aiohttp_client: AiohttpClient) -> None:
    client = await _client(settings, aiohttp_client)
    assert client.port is not None
    callback = WYRE.build("1003")
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        f"POST {callback.path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(callback.body)}\r\n\r\n".encode()
        + callback.body[:100]
    )
    await asyncio.sleep(1.0)
    writer.write(callback.body[100:])
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
