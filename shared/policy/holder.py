"""The live policy snapshot of one process, kept current from the store.

A `PolicyHolder` loads the active version at start, reloads when the policy channel announces a
version, and checks the active version number every `poll_interval_s` (announcements are
fire-and-forget: a process that was reconnecting misses them). Compilation runs in a thread so a
100k-address policy never stalls requests; the swap is one reference assignment, so a request
sees either the old snapshot or the new one, never a mix.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.db import Pool
from shared.errors import PolicyError
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.snapshot import PolicySnapshot
from shared.policy.store import active_version, compile_stored, load_active

logger = logging.getLogger(__name__)

_LOAD_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, PolicyError)
_REDIS_RETRY_S = 1.0


class PolicyHolder:
    """Holds the current `PolicySnapshot` (None until one is loaded: decisions fail closed)."""

    def __init__(
        self,
        pool: Pool,
        redis: Redis,
        keys: RedisKeys,
        *,
        poll_interval_s: float = 5.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool, self._redis, self._channel = pool, redis, keys.policy_channel
        self._poll_interval_s = poll_interval_s
        self._metrics = metrics
        self._current: PolicySnapshot | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        if metrics is not None:
            metrics.policy_age_seconds.set_function(lambda: self.age_seconds or 0.0)

    @property
    def current(self) -> PolicySnapshot | None:
        return self._current

    @property
    def age_seconds(self) -> float | None:
        """Seconds since the current snapshot's version was published."""
        current = self._current
        return None if current is None else max(0.0, time.time() - current.published_at)

    async def start(self) -> None:
        """Load what is active now (a failure leaves None and is retried by the poll), then follow."""
        await self.refresh()
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def refresh(self) -> bool:
        """Load and swap in the active version if it differs from ours; True when swapped."""
        async with self._lock:
            try:
                snapshot = await self._load_if_changed()
            except _LOAD_ERRORS as e:
                logger.warning("policy load failed, keeping version %s: %s", self._version(), e)
                self._count("failed")
                return False
            if snapshot is None:
                self._count("unchanged")
                return False
            self._current = snapshot
        logger.info("policy version %d active (%d rules)", snapshot.version, snapshot.rule_count)
        self._count("swapped")
        if self._metrics is not None:
            self._metrics.policy_version.set(snapshot.version)
        return True

    async def _load_if_changed(self) -> PolicySnapshot | None:
        version = await active_version(self._pool)
        # Nothing active (never published, or the table was emptied): keep what we decide with.
        if version is None or version == self._version():
            return None
        stored = await load_active(self._pool)
        if stored is None:
            return None
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, compile_stored, stored)

    def _version(self) -> int | None:
        current = self._current
        return None if current is None else current.version

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.policy_reloads.labels(outcome).inc()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            await self.refresh()

    async def _listen(self) -> None:
        while True:
            try:
                await self._follow_channel()
            except (RedisError, OSError) as e:
                logger.warning("policy channel lost (%s); retrying, the poll covers the gap", e)
                await asyncio.sleep(_REDIS_RETRY_S)

    async def _follow_channel(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self._channel)
            while True:
                # get_message with a timeout instead of listen(): the client's socket timeout
                # would otherwise turn a quiet channel into an error.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await self.refresh()
