"""Group commit for one event loop: calls made in the same loop iteration share one round trip.

At most `max_in_flight` batches are on the wire at once; calls arriving meanwhile wait for the
next one, so under load one round trip carries many calls and when idle a call goes out at
once. `gateway.ingest` (callbacks, with its spool fallback inside its `send`) and
`gateway.decisions` (the synchronous routes' memo) batch through it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


# Every batcher of the gateway (ingest, decision memo, batched reads) uses these: a batch of up
# to MAX_BATCH calls per round trip, and more than one batch in flight keeps latency down when
# the loop is busy, while more than a few only adds Redis connections without adding throughput.
MAX_BATCH = 256
MAX_IN_FLIGHT = 4


class LoopBatcher(Generic[T, R]):
    """`submit(item)` returns the item's result from `send(items)`, one call per batch of items.

    `send` answers one result per item, in order; when it raises, every caller of that batch
    raises (an exception of the same type, its own instance).
    """

    def __init__(
        self,
        send: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[_Pending[T, R]] = []
        self._scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, future))
        self._schedule()
        return await future

    async def stop(self) -> None:
        """Send what is pending and wait for the batches on the wire."""
        while self._pending or self._in_flight:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            else:
                self._start_flush()

    def _schedule(self) -> None:
        if not self._scheduled and len(self._in_flight) < self._max_in_flight:
            self._scheduled = True
            # A fresh context: the batch serves many requests, so its log lines (and its task's)
            # must not carry the correlation id of whichever request happened to schedule it.
            asyncio.get_running_loop().call_soon(self._start_flush, context=contextvars.Context())

    def _start_flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        task = asyncio.create_task(self._flush(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._pending:
            self._schedule()

    async def _flush(self, batch: list[_Pending[T, R]]) -> None:
        try:
            results = await self._send([p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} items")
        except Exception as e:  # handed to the waiters, who decide what it means; none may hang
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(_own_copy(e))
            return
        except BaseException:  # cancelled mid-send (shutdown): the waiters must not hang
            for pending in batch:
                pending.future.cancel()
            raise
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)


def _own_copy(error: Exception) -> Exception:
    # Each waiter raises its own exception object: one shared instance would collect every
    # waiter's traceback (and each Future keeps a reference to what it raises).
    try:
        copy = type(error)(*error.args)
    except TypeError:
        return error
    copy.__cause__ = error
    return copy
