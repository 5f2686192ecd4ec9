"""`Replica[T]`: state loaded from Redis, held in a process's memory for the decision path.

A replica reads its state with one loader coroutine, holds the result behind a single reference
(`current`: no I/O to read it), reloads it when its Redis channel announces a change, and polls
every `poll_interval_s` to cover announcements lost while the subscription reconnects. Each reload
swaps that one reference, so a reader sees the old state or the new one, never half of each.

Redis down is survived, never raised: a failed load at `start` leaves the state empty (the poll
retries it), a failed poll keeps the previous state and logs a warning. A failed reload on an
announcement propagates into `shared.channels.follow`, which resubscribes after a pause.

A poll reloads every round, unless the replica has a cheaper `stale` check (say, a version
counter): then a round reloads only when it says so, or when `full_reload_s` has passed since the
last reload a poll made (a counter that came back to the very same number).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.asyncio import Redis

from shared.channels import follow, stop_tasks
from shared.health import REDIS_ERRORS

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Replica(Generic[T]):
    """State of type `T` loaded by `load`, kept current by `channel`'s announcements and a poll."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        load: Callable[[], Awaitable[T]],
        empty: T,
        *,
        name: str,
        poll_interval_s: float,
        stale: Callable[[], Awaitable[bool]] | None = None,
        full_reload_s: float = math.inf,
    ) -> None:
        self._redis, self._channel, self._load, self._name = redis, channel, load, name
        self._poll_interval_s, self._stale, self._full_reload_s = poll_interval_s, stale, full_reload_s
        self._current = empty
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def current(self) -> T:
        """The state last loaded (the `empty` one until a load succeeds)."""
        return self._current

    async def start(self) -> None:
        """Load once (a failure is retried by the poll), then follow announcements and poll."""
        with contextlib.suppress(*REDIS_ERRORS):
            await self.reload()
        self._tasks = [
            asyncio.create_task(follow(self._redis, self._channel, self._on_message)),
            asyncio.create_task(self._poll()),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    async def reload(self) -> None:
        """Load the state whole and swap it in (raises Redis errors; the state is then kept)."""
        # One reference swap: a reader sees the old state or the new one, never half of each.
        self._current = await self._load()

    async def _on_message(self, _: bytes) -> None:
        await self.reload()

    async def _poll(self) -> None:
        next_full = time.monotonic() + self._full_reload_s
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                if self._stale is None or await self._stale() or time.monotonic() >= next_full:
                    next_full = time.monotonic() + self._full_reload_s
                    await self.reload()
            except REDIS_ERRORS as e:  # anything else is a bug in the loader or the data
                logger.warning("%s replica reload failed (retried next round): %s", self._name, type(e).__name__)
