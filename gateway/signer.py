"""Where the Cobo TSS check route signs its answers: beside the event loop, not on it.

Every check answer carries an RSA signature (0.3-0.5 ms at 2048 bits, 2-6 ms at 4096), more than
everything else the route does, so the signature is made elsewhere while the loop parses,
decides and answers the next requests; one gateway process keeps two cores busy.

- `process` (the default): one signer process per gateway process (`gateway.signing_child`),
  fed through a pipe. The loop writes the signing inputs of one iteration in one write, and the
  process answers what arrived together in one write.
- `thread`: one signer thread. `cryptography` releases the GIL while OpenSSL signs, but the
  thread needs the GIL back after every signature, and a loop that is busy running Python lets
  it go only at its next switch interval (5 ms): next to a busy loop a thread signed at about a
  third of the pure rate in our measurements (docs/benchmarks.md), a process at the pure rate.
- `loop`: on the event loop (no helper at all).

One helper per gateway process, not a pool: its rate is one core's signing rate, the figure the
benchmark holds the route against, and more helpers would only take the loop's core.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.keys import SETTINGS
from gateway.signing_child import frame, frames, write_all
from shared.providers.cobo_jwt import compact, rs256_signature, sign_rs256, signing_input

logger = logging.getLogger(__name__)

# Signing inputs on their way to (or in) the signer process at once: enough to keep it busy
# for tens of milliseconds, and few enough (~30 KB) that a write into the pipe never blocks
# the loop even if the process stopped reading.
MAX_OUTSTANDING = 64

_Job = tuple[dict[str, Any], asyncio.Future[str]]


class Signer(Protocol):
    async def sign(self, claims: dict[str, Any]) -> str: ...

    async def stop(self) -> None: ...


class ProcessSigner:
    """Signs in a child process; falls back to signing on the loop if that process is gone."""

    def __init__(self, key: rsa.RSAPrivateKey, loop: asyncio.AbstractEventLoop) -> None:
        self._key = key
        self._loop = loop
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.signing_child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to, self._from = self._proc.stdin.fileno(), self._proc.stdout.fileno()
        der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_all(self._to, frame(der))
        os.set_blocking(self._from, False)
        self._queued: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._buffer = bytearray()
        self._scheduled = False
        self._alive = True
        loop.add_reader(self._from, self._on_readable)

    @property
    def pid(self) -> int:
        """The signer process (operators may look for it; tests kill it)."""
        return self._proc.pid

    async def sign(self, claims: dict[str, Any]) -> str:
        data = signing_input(claims)
        if not self._alive:
            return compact(data, rs256_signature(data, self._key))
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._queued.append((data, future))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._send)
        signature = await future
        # An empty signature: the process could not sign this one (or is gone); sign it here.
        return compact(data, signature or rs256_signature(data, self._key))

    async def stop(self) -> None:
        """Let the process finish what it was given, then end it."""
        if self._waiting and self._alive:
            await asyncio.wait(list(self._waiting), timeout=5)  # waiting does not cancel them
        self._close(None)
        await self._loop.run_in_executor(None, self._reap)

    def _send(self) -> None:
        self._scheduled = False
        room = MAX_OUTSTANDING - len(self._waiting)
        if not self._alive or room <= 0 or not self._queued:
            return
        batch, self._queued = self._queued[:room], self._queued[room:]
        try:
            write_all(self._to, b"".join(frame(data) for data, _ in batch))
        except OSError as e:
            self._close(e)
            for _, future in batch:
                future.set_result(b"")
            return
        self._waiting.extend(future for _, future in batch)

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._from, 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            self._close(e)
            return
        if not chunk:
            self._close(EOFError("signer process exited"))
            return
        self._buffer += chunk
        for signature in frames(self._buffer):
            future = self._waiting.popleft()
            if not future.done():
                future.set_result(signature)
        if self._queued and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._send)

    def _close(self, error: BaseException | None) -> None:
        if not self._alive:
            return
        self._alive = False
        if error is not None:
            logger.error("cobo_tss signer process failed (%s): signing on the event loop from now on", error)
        self._loop.remove_reader(self._from)
        for future in [*self._waiting, *(f for _, f in self._queued)]:
            if not future.done():
                future.set_result(b"")  # signed on the loop by its caller
        self._waiting.clear()
        self._queued.clear()
        assert self._proc.stdin is not None
        self._proc.stdin.close()

    def _reap(self) -> None:
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        assert self._proc.stdout is not None
        self._proc.stdout.close()


class ThreadSigner:
    """Signs in one thread of this process (see the module docstring for why not by default)."""

    def __init__(self, key: rsa.RSAPrivateKey, loop: asyncio.AbstractEventLoop) -> None:
        self._key = key
        self._loop = loop
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._done: collections.deque[tuple[asyncio.Future[str], str | Exception]] = collections.deque()
        self._lock = threading.Lock()
        self._wake_pending = False
        self._thread = threading.Thread(target=self._run, name="cobo-tss-signer", daemon=True)
        self._thread.start()

    async def sign(self, claims: dict[str, Any]) -> str:
        future: asyncio.Future[str] = self._loop.create_future()
        self._jobs.put((claims, future))
        return await future

    async def stop(self) -> None:
        """Sign what is queued, then end the thread."""
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        self._deliver()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            claims, future = job
            result: str | Exception
            try:
                result = sign_rs256(claims, self._key)
            except Exception as e:  # the waiter gets it: the thread must outlive a bad job
                result = e
            self._done.append((future, result))
            with self._lock:
                if self._wake_pending:
                    continue  # the wake-up on its way delivers this one too
                self._wake_pending = True
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        # The flag goes down before the queue is drained: a signature finished after this point
        # schedules a wake-up of its own, so none is left behind.
        with self._lock:
            self._wake_pending = False
        while self._done:
            future, result = self._done.popleft()
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)


SIGNER = web.AppKey("cobo_tss_signer", Signer)


async def answer_signer(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the Cobo TSS answer signer (`CALLGATE_COBO_TSS_SIGNER`; none for `loop`)."""
    config = app[SETTINGS].providers.cobo_tss
    if config is None or config.signing == "loop":
        yield
        return
    loop = asyncio.get_running_loop()
    signer: Signer
    if config.signing == "thread":
        signer = ThreadSigner(config.private_key, loop)
    else:
        signer = ProcessSigner(config.private_key, loop)
    app[SIGNER] = signer
    yield
    await signer.stop()
