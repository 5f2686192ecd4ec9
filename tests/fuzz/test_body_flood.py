"""A flood of oversized bodies against a real `callgate gateway` process: announced by
Content-Length, chunked, and lying about their length both ways. The process's resident memory
(from /proc) must stay bounded (a generous bound: what matters is that bodies are not buffered
whole), every oversized request gets a 4xx or a closed connection, never a 2xx or 5xx, and a
valid callback is served afterwards."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.routes import ASYNC_ROUTES, WYRE_TOKEN
from tests.fuzz.gateway_process import GatewayProcess, gateway_process

WYRE = next(r for r in ASYNC_ROUTES if r.provider == "wyre")
MAX_BODY = 256 * 1024
BODY = 4 * 2**20  # each request sends 16 times the cap
CONCURRENT = 80  # per kind; 4 kinds: 1.25 GiB offered in all
# Growth of RSS over the idle process allowed during the flood: the cap and half as much again
# (asyncio's reads are up to 256 KiB) per connection. Buffering the bodies whole would need 4 MiB
# per connection; before gateway/server.py dropped reads after a refused head, the lying kind alone
# needed up to 16 MiB per connection (aiohttp queues an error quoting each read), and this test
# measured 157 MiB against 70 MiB with the fix.
RSS_GROWTH_LIMIT_KIB = 4 * CONCURRENT * (MAX_BODY * 3 // 2) // 1024
PATH = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
CHUNK = b"x" * 65536


@pytest.fixture(scope="module")
def gateway(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    env = {"CALLGATE_WYRE_PATH_TOKEN": WYRE_TOKEN, "CALLGATE_MAX_BODY_BYTES": str(MAX_BODY)}
    with gateway_process(env, tmp_path_factory.mktemp("body-flood"), redis_url, database_url) as process:
        yield process


def _head(extra: str) -> bytes:
    return f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}\r\n".encode()


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# kind -> (head, what follows it in pieces)
KINDS: dict[str, tuple[bytes, bytes, int]] = {
    "content-length": (_head(f"Content-Length: {BODY}\r\n"), CHUNK, BODY // len(CHUNK)),
    "chunked": (_head("Transfer-Encoding: chunked\r\n"), _chunked(CHUNK), BODY // len(CHUNK)),
    # Announces a small body, then keeps sending: the surplus is read as the next request's head.
    "short-length": (_head("Content-Length: 100\r\n"), CHUNK, BODY // len(CHUNK)),
    # Announces 1 GiB and sends 4 MiB, then stalls.
    "long-length": (_head(f"Content-Length: {2**30}\r\n"), CHUNK, BODY // len(CHUNK)),
}


async def _oversized(port: int, head: bytes, piece: bytes, pieces: int) -> bytes:
    """Send head and pieces until the server answers or closes; return what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(reader.read(4096))
    try:
        writer.write(head)
        for _ in range(pieces):
            if answer.done():
                break
            writer.write(piece)
            await writer.drain()
        return await asyncio.wait_for(answer, 30)
    except (ConnectionResetError, BrokenPipeError):
        return b"" if not answer.done() or answer.exception() else answer.result()
    finally:
        answer.cancel()
        writer.close()


class _PeakRss:
    """Samples the process's VmRSS every 20 ms in a thread (the event loop is busy sending)."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.peak = gateway.rss_kib()
        self._gateway = gateway
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._gateway.rss_kib())

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _callback(port: int, i: str) -> bytes:
    callback = WYRE.build(i)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_head(f"Content-Length: {len(callback.body)}\r\n") + callback.body)
        return await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()


@pytest.mark.slow
async def test_a_flood_of_oversized_bodies_keeps_memory_bounded_and_the_gateway_serving(
    gateway: GatewayProcess,
) -> None:
    assert (await _callback(gateway.port, "flood-warm")).startswith(b"HTTP/1.1 200")
    idle = gateway.rss_kib()
    started = time.monotonic()
    with _PeakRss(gateway) as rss:
        answers = await asyncio.gather(
            *(
                _oversized(gateway.port, head, piece, pieces)
                for head, piece, pieces in KINDS.values()
                for _ in range(CONCURRENT)
            )
        )
    took = time.monotonic() - started
    statuses = [a.split(b" ", 2)[1] if a.startswith(b"HTTP/1.") else b"closed" for a in answers]
    by_kind = {kind: statuses[i * CONCURRENT : (i + 1) * CONCURRENT] for i, kind in enumerate(KINDS)}
    assert set(by_kind["content-length"]) == {b"413"}, by_kind["content-length"][:3]
    assert set(by_kind["long-length"]) == {b"413"}, by_kind["long-length"][:3]
    assert set(by_kind["chunked"]) <= {b"413", b"closed"}, by_kind["chunked"][:3]
    # 100 bytes of x are no Wyre transaction (400); the surplus then never gets an answer of its own.
    assert set(by_kind["short-length"]) == {b"400"}, by_kind["short-length"][:3]
    assert rss.peak - idle < RSS_GROWTH_LIMIT_KIB, f"RSS grew {rss.peak - idle} KiB (idle {idle} KiB), {took:.1f} s"
    assert (await _callback(gateway.port, "flood-after")).startswith(b"HTTP/1.1 200")
    print(f"RSS idle {idle} KiB, peak {rss.peak} KiB during a {took:.1f} s flood")
