"""Group commit of event rows: concurrent jobs share one INSERT ... SELECT unnest(...).

A worker runs many jobs at once; each hands its envelope to the writer and awaits the result of
the batch it landed in, so one Postgres round trip stores many events.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from shared.db import Pool, insert_events
from shared.jobs import EventEnvelope
from shared.notify.outbox import write_outbox

MAX_BATCH = 500

# Errors that say "the database is away", where splitting a batch would only multiply the wait.
TRANSIENT_DB = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


@dataclass(slots=True)
class _Pending:
    event: EventEnvelope
    future: asyncio.Future[bool]


class EventWriter:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="event-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for pending in self._pending:
            pending.future.cancel()

    async def store(self, event: EventEnvelope) -> bool:
        """Insert the event unless present; True when this call inserted it."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(event, future))
        self._wakeup.set()
        return await future

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        # One batch may carry the same key twice (a replayed job beside its original); the
        # unique constraint makes the second a no-op, and both jobs learn the row exists.
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                inserted = await insert_events(conn, [p.event for p in batch])
                # Notifications commit with their event rows: a stored event always has them.
                await write_outbox(conn, _inserted_once(batch, inserted))
        except asyncpg.PostgresError as e:
            if len(batch) > 1 and not isinstance(e, TRANSIENT_DB):
                # One bad row fails the whole statement: write the rows one by one, so only the
                # job that carried it sees the error and every other event is stored.
                for p in batch:
                    await self._write([p])
                return
            self._fail(batch, e)
            return
        except Exception as e:  # handed to each job, which classifies it (retry or fail)
            self._fail(batch, e)
            return
        for p in batch:
            if not p.future.done():
                key = (p.event.provider, p.event.idempotency_key)
                p.future.set_result(key in inserted)
                inserted.discard(key)

    @staticmethod
    def _fail(batch: list[_Pending], e: BaseException) -> None:
        for p in batch:
            if not p.future.done():
                p.future.set_exception(e)


def _inserted_once(batch: list[_Pending], inserted: set[tuple[str, str]]) -> list[EventEnvelope]:
    """The events this batch inserted, each once (a batch may carry one key twice)."""
    found = {(p.event.provider, p.event.idempotency_key): p.event for p in batch}
    return [event for key, event in found.items() if key in inserted]
