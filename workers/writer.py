"""Group commit of event rows: concurrent jobs share one INSERT ... SELECT unnest(...).

A worker runs many jobs at once; each hands its envelope to the writer and awaits the result of
the batch it landed in, so one Postgres transaction stores many events, writes their
notifications, and reads back the notifications still to be sent for all of them (what each
job's delivery follow-up sends), instead of one read per event.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from shared.db import Pool, insert_events
from shared.jobs import EventEnvelope
from shared.notify.outbox import Delivery, pending_for_events, write_outbox
from workers import transient

MAX_BATCH = 500

# Errors that say "the database is away", where splitting a batch would only multiply the wait
# (the server errors among `workers.transient.POSTGRES`).
TRANSIENT_DB = tuple(e for e in transient.POSTGRES if issubclass(e, asyncpg.PostgresError))


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as the writer left it: inserted by this call (or already there), and its
    notifications never attempted yet (new ones, or those a killed run left unsent)."""

    event: EventEnvelope
    inserted: bool
    deliveries: tuple[Delivery, ...] = ()


@dataclass(slots=True)
class _Pending:
    event: EventEnvelope
    future: asyncio.Future[Stored]


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

    async def store(self, event: EventEnvelope) -> Stored:
        """Insert the event unless present (`inserted` says whether this call did), with its outbox."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
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
                unsent = await pending_for_events(conn, list(_keys(batch)))
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
                # A key twice in one batch: the first job inserted it and sends its notifications.
                p.future.set_result(Stored(p.event, key in inserted, tuple(unsent.pop(key, ()))))
                inserted.discard(key)

    @staticmethod
    def _fail(batch: list[_Pending], e: BaseException) -> None:
        for p in batch:
            if not p.future.done():
                p.future.set_exception(e)


def _keys(batch: list[_Pending]) -> dict[tuple[str, str], None]:
    return dict.fromkeys((p.event.provider, p.event.idempotency_key) for p in batch)


def _inserted_once(batch: list[_Pending], inserted: set[tuple[str, str]]) -> list[EventEnvelope]:
    """The events this batch inserted, each once (a batch may carry one key twice)."""
    found = {(p.event.provider, p.event.idempotency_key): p.event for p in batch}
    return [event for key, event in found.items() if key in inserted]
