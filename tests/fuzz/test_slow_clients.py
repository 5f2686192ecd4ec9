"""Slow and oversized request heads against a real `callgate gateway` process on raw sockets:
the request-head deadline (gateway/server.py) cuts slowloris heads, on fresh and on idle
keep-alive connections, without cutting idle keep-alive connections or heads that arrive in
pieces in time; a flood of stalled connections does not stop a normal client being served;
heads over aiohttp's limits are answered 431, garbage 400, and all of it is counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from gateway.server import MAX_HEADERS, MAX_LINE_BYTES
from tests.faults.routes import ASYNC_ROUTES, WYRE_TOKEN
from tests.fuzz.gateway_process import GatewayProcess, gateway_process

HEAD_TIMEOUT_S = 2.0
# Generous upper bounds: the machine is shared, and a late cut is still a cut.
LATE_S = 3.0
REJECTIONS = "callgate_http_rejections_total"
WYRE = next(r for r in ASYNC_ROUTES if r.provider == "wyre")


@pytest.fixture(scope="module")
def gateway(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {"CALLGATE_WYRE_PATH_TOKEN": WYRE_TOKEN, "CALLGATE_REQUEST_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT_S)}
    with gateway_process(env, tmp_path_factory.mktemp("slow-clients"), redis_url, database_url) as process:
        yield process


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(port: int) -> Conn:
    return await asyncio.open_connection("127.0.0.1", port)


def _callback_request(i: str) -> bytes:
    callback = WYRE.build(i)
    return (
        f"POST {callback.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(callback.body)}\r\n\r\n"
    ).encode() + callback.body


async def _exchange(conn: Conn, request: bytes, limit_s: float = 10) -> bytes:
    reader, writer = conn
    writer.write(request)
    await writer.drain()
    return await asyncio.wait_for(reader.read(65536), limit_s)


async def _served(port: int, i: str) -> float:
    """A valid Wyre callback on a fresh connection; returns how long its answer took."""
    started = time.monotonic()
    conn = await _connect(port)
    try:
        answer = await _exchange(conn, _callback_request(i))
    finally:
        conn[1].close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return time.monotonic() - started


async def _until_cut(reader: asyncio.StreamReader, started: float) -> tuple[float, bytes]:
    answer = await asyncio.wait_for(reader.read(65536), HEAD_TIMEOUT_S + LATE_S + 5)
    return time.monotonic() - started, answer


def _is_timeout_answer(answer: bytes) -> bool:
    return answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer and answer.endswith(b'"}')


async def test_slowloris_heads_are_cut_at_the_deadline_while_a_callback_is_served(gateway: GatewayProcess) -> None:
    """20 connections send a header line every 0.2 s, forever: each is answered 408 and closed
    at the deadline (not at aiohttp's 75 s), and a valid callback is answered meanwhile."""
    before = gateway.metric(REJECTIONS, {"reason": "head_timeout"})
    conns = [await _connect(gateway.port) for _ in range(20)]
    started = time.monotonic()

    async def drip(writer: asyncio.StreamWriter) -> None:
        writer.write(f"POST /wyre/v3/wallet-callbacks/{WYRE_TOKEN} HTTP/1.1\r\nHost: x\r\n".encode())
        for n in range(10_000):
            await asyncio.sleep(0.2)
            writer.write(b"X-Slow-%d: y\r\n" % n)

    drips = [asyncio.create_task(drip(w)) for _, w in conns]
    try:
        served_in = await _served(gateway.port, "slow-1")
        cuts = await asyncio.gather(*(_until_cut(r, started) for r, _ in conns))
    finally:
        for task in drips:
            task.cancel()
        await asyncio.gather(*drips, return_exceptions=True)
        for _, writer in conns:
            writer.close()
    assert served_in < HEAD_TIMEOUT_S, served_in
    assert all(_is_timeout_answer(answer) for _, answer in cuts), cuts[0]
    assert all(HEAD_TIMEOUT_S - 0.1 < t < HEAD_TIMEOUT_S + LATE_S for t, _ in cuts), [t for t, _ in cuts]
    assert gateway.metric(REJECTIONS, {"reason": "head_timeout"}) - before == len(conns)


async def test_a_flood_of_stalled_connections_does_not_stop_a_normal_client(gateway: GatewayProcess) -> None:
    """500 connections open, half of them after a partial head, then stall. Callbacks on fresh
    connections are answered throughout; every stalled connection is closed at the deadline."""
    flood: list[Conn] = []
    for i in range(500):
        conn = await _connect(gateway.port)
        if i % 2:
            conn[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Stall: ")
        flood.append(conn)
    started = time.monotonic()
    try:
        answered = [await _served(gateway.port, f"flood-{i}") for i in range(5)]
        cuts = await asyncio.gather(*(_until_cut(r, started) for r, _ in flood))
    finally:
        for _, writer in flood:
            writer.close()
    assert max(answered) < HEAD_TIMEOUT_S, answered
    # A flood connection may be cut a little before `started` (it opened earlier), never long after.
    assert all(t < HEAD_TIMEOUT_S + LATE_S for t, _ in cuts), max(t for t, _ in cuts)
    assert all(_is_timeout_answer(answer) for _, answer in cuts), next(a for _, a in cuts if not _is_timeout_answer(a))


async def test_idle_keepalive_is_kept_and_a_request_started_on_it_must_finish_in_time(gateway: GatewayProcess) -> None:
    conn = await _connect(gateway.port)
    reader, writer = conn
    try:
        assert (await _exchange(conn, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 200")
        # Idle past the head deadline: an idle keep-alive connection is the keep-alive timeout's.
        await asyncio.sleep(HEAD_TIMEOUT_S + 0.5)
        # A head in three pieces, within the deadline, is served.
        request = _callback_request("keepalive-1")
        writer.write(request[:20])
        await asyncio.sleep(HEAD_TIMEOUT_S / 3)
        writer.write(request[20:60])
        await asyncio.sleep(HEAD_TIMEOUT_S / 3)
        assert (await _exchange(conn, request[60:])).startswith(b"HTTP/1.1 200")
        # The next request starts and stalls: cut at the deadline, counted from its first byte.
        await asyncio.sleep(HEAD_TIMEOUT_S + 0.5)
        started = time.monotonic()
        writer.write(b"GET /healthz HTTP/1.1\r\n")
        took, answer = await _until_cut(reader, started)
    finally:
        writer.close()
    assert _is_timeout_answer(answer), answer
    assert HEAD_TIMEOUT_S - 0.1 < took < HEAD_TIMEOUT_S + LATE_S, took


async def test_oversized_and_malformed_heads_get_a_clean_4xx_and_are_counted(gateway: GatewayProcess) -> None:
    before = {r: gateway.metric(REJECTIONS, {"reason": r}) for r in ("head_too_large", "bad_head")}
    wyre = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
    heads = {
        "long header": f"POST {wyre} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * (MAX_LINE_BYTES + 1)}\r\n\r\n",
        "long line": f"GET /{'a' * (MAX_LINE_BYTES + 1)} HTTP/1.1\r\nHost: x\r\n\r\n",
        "many headers": "GET /healthz HTTP/1.1\r\n" + "".join(f"X-{i}: v\r\n" for i in range(MAX_HEADERS + 1)) + "\r\n",
        "1 MiB header": f"POST {wyre} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 2**20}\r\n\r\n",
    }
    for name, head in heads.items():
        conn = await _connect(gateway.port)
        try:
            answer = await _exchange(conn, head.encode())
            assert answer.split(b" ", 2)[1] == b"431", (name, answer[:200])
            assert answer.endswith(b'{"error":"head_too_large","detail":"request head too large"}'), answer
            assert await asyncio.wait_for(conn[0].read(), 10) == b""  # and the connection closed
        except ConnectionResetError:
            # The 1 MiB header: the server may close while we still send; it must not have answered 200.
            assert name == "1 MiB header"
        finally:
            conn[1].close()
    conn = await _connect(gateway.port)
    try:
        answer = await _exchange(conn, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
    finally:
        conn[1].close()
    assert answer.split(b" ", 2)[1] == b"400" and answer.endswith(b'"detail":"malformed HTTP request"}'), answer
    assert gateway.metric(REJECTIONS, {"reason": "head_too_large"}) - before["head_too_large"] >= len(heads) - 1
    assert gateway.metric(REJECTIONS, {"reason": "bad_head"}) - before["bad_head"] == 1
    await _served(gateway.port, "after-heads")
