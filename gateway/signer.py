"""Where the Cobo TSS check route signs its answers: beside the event loop, not on it.

Every check answer carries an RSA signature (0.3-0.5 ms at 2048 bits, 2-6 ms at 4096), more than
everything else the route does, so the signature is made elsewhere while the loop parses,
decides and answers the next requests; one gateway process keeps two cores busy.

- `process` (the default): one signer process per gateway process (`gateway.signing_child`),
  fed through a pipe. The loop writes the signing inputs of one iteration in one write, and the
  process answers what arrived together in one write. A process that dies is replaced after a
  backoff; meanwhile the loop signs (`callgate_signer_restarts_total` counts the replacements).
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
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.keys import METRICS, SETTINGS
from gateway.signing_child import frame, frames, write_all
from shared.metrics import Metrics
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


class _Child:
    """One signer process and its pipes: signing inputs go in as frames, signatures come back in order."""

    def __init__(self, key_der: bytes) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.signing_child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.to, self.source = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self.started = time.monotonic()
        self.waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self.buffer = bytearray()
        try:
            write_all(self.to, frame(key_der))
        except OSError:
            # It died before taking the key: nobody holds it yet, so end and reap it here.
            self.proc.kill()
            self.close()
            self.reap()
            raise
        os.set_blocking(self.source, False)

    def close(self) -> None:
        """Close its stdin: the process ends once it has answered what it was given."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def reap(self) -> None:
        """Wait for the process to end (blocking: run in an executor)."""
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class ProcessSigner:
    """Signs in a child process. If that process dies, what it held and what arrives meanwhile is
    signed on the loop (slower, never unsigned), and a new process is started after a backoff
    (RESTART_DELAYS_S; back to the first delay once a process has lived STABLE_S)."""

    RESTART_DELAYS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
    STABLE_S = 60.0

    def __init__(self, key: rsa.RSAPrivateKey, loop: asyncio.AbstractEventLoop, metrics: Metrics | None = None) -> None:
        self._key = key
        self._loop = loop
        self._metrics = metrics
        # PKCS#8 DER, handed to each process over its pipe: never on disk or in argv.
        self._der = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._queued: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._scheduled = False
        self._failures = 0  # consecutive short-lived processes: the index into RESTART_DELAYS_S
        self._restart: asyncio.TimerHandle | None = None
        self._stopping = False
        self._children: list[_Child] = []  # ended ones wait here to be reaped
        self._child: _Child | None = self._start_child()

    @property
    def pid(self) -> int | None:
        """The current signer process, None while it is being replaced (operators look for it; tests kill it)."""
        return self._child.proc.pid if self._child is not None else None

    async def sign(self, claims: dict[str, Any]) -> str:
        data = signing_input(claims)
        if self._child is None:
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
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
        child = self._child
        if child is not None and child.waiting:
            await asyncio.wait(list(child.waiting), timeout=5)  # waiting does not cancel them
        self._lose_child(None)
        for ended in self._children:
            await self._loop.run_in_executor(None, ended.reap)
        self._children.clear()

    def _start_child(self) -> _Child:
        child = _Child(self._der)
        self._children.append(child)
        self._loop.add_reader(child.source, self._on_readable, child)
        return child

    def _send(self) -> None:
        self._scheduled = False
        child = self._child
        if child is None:
            self._sign_queued_here()
            return
        room = MAX_OUTSTANDING - len(child.waiting)
        if room <= 0 or not self._queued:
            return
        batch, self._queued = self._queued[:room], self._queued[room:]
        try:
            write_all(child.to, b"".join(frame(data) for data, _ in batch))
        except OSError as e:
            for _, future in batch:
                future.set_result(b"")
            self._lose_child(e)
            return
        child.waiting.extend(future for _, future in batch)

    def _on_readable(self, child: _Child) -> None:
        try:
            chunk = os.read(child.source, 1 << 16)
        except BlockingIOError:
            return
        except OSError as e:
            self._lose_child(e)
            return
        if not chunk:
            self._lose_child(EOFError("signer process exited"))
            return
        child.buffer += chunk
        for signature in frames(child.buffer):
            future = child.waiting.popleft()
            if not future.done():
                future.set_result(signature)
        if self._queued and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._send)

    def _lose_child(self, error: BaseException | None) -> None:
        """The current process is done with: its waiters are signed on the loop by their callers."""
        child, self._child = self._child, None
        if child is None:
            return
        self._loop.remove_reader(child.source)
        for future in child.waiting:
            if not future.done():
                future.set_result(b"")
        child.waiting.clear()
        self._sign_queued_here()
        child.close()
        if error is None or self._stopping:
            return
        lived = time.monotonic() - child.started
        self._failures = 0 if lived >= self.STABLE_S else self._failures + 1
        self._restart_later(f"failed ({error}): signing on the event loop")

    def _sign_queued_here(self) -> None:
        queued, self._queued = self._queued, []
        for _, future in queued:
            if not future.done():
                future.set_result(b"")

    def _replace(self) -> None:
        self._restart = None
        if self._stopping:
            return
        # The ended processes are reaped off the loop before the new one starts.
        for ended in [c for c in self._children if c.proc.poll() is not None]:
            self._children.remove(ended)
            assert ended.proc.stdout is not None
            ended.proc.stdout.close()
        try:
            self._child = self._start_child()
        except OSError as e:  # fork refused (memory, pid limits): try again later
            self._failures += 1
            self._restart_later(f"could not start ({e})")
            return
        if self._metrics is not None:
            self._metrics.signer_restarts.inc()
        logger.warning("cobo_tss signer process started again (pid %d)", self._child.proc.pid)

    def _restart_later(self, what: str) -> None:
        """A new process after the backoff of `_failures` consecutive short lives."""
        delay = self.RESTART_DELAYS_S[min(self._failures, len(self.RESTART_DELAYS_S) - 1)]
        logger.error("cobo_tss signer process %s, a new process in %.1fs", what, delay)
        self._restart = self._loop.call_later(delay, self._replace)


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
    if config is None or config.signer == "loop":
        yield
        return
    loop = asyncio.get_running_loop()
    signer: Signer
    if config.signer == "thread":
        signer = ThreadSigner(config.private_key, loop)
    else:
        signer = ProcessSigner(config.private_key, loop, app[METRICS])
    app[SIGNER] = signer
    yield
    await signer.stop()
