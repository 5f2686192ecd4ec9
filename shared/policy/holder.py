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
from collections.abc import Mapping
from typing import TYPE_CHECKING

import asyncpg
from redis.asyncio import Redis

from shared.channels import follow, stop_tasks
from shared.db import Pool
from shared.errors import PolicyError
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.snapshot import PolicySnapshot
from shared.policy.store import StoredPolicy, compile_stored, load_active, load_version, versions_in_effect

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from shared.risk.freezes import Freeze
    from shared.risk.replica import FreezeReplica

_LOAD_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError, PolicyError)


class PolicyHolder:
    """Holds the current `PolicySnapshot` (None until one is loaded: decisions fail closed)."""

    def __init__(
        self,
        pool: Pool,
        redis: Redis,
        keys: RedisKeys,
        *,
        poll_interval_s: float = 5.0,
        start_timeout_s: float = 5.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._pool, self._redis, self._channel = pool, redis, keys.policy_channel
        self._poll_interval_s, self._start_timeout_s = poll_interval_s, start_timeout_s
        self._metrics = metrics
        self._current: PolicySnapshot | None = None
        self._shadow: PolicySnapshot | None = None  # a candidate evaluated beside, never answered with
        self._freezes: FreezeReplica | None = None
        self._merged: tuple[PolicySnapshot, Mapping[str, Freeze], PolicySnapshot] | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        if metrics is not None:
            metrics.policy_age_seconds.set_function(lambda: self.age_seconds or 0.0)

    @property
    def current(self) -> PolicySnapshot | None:
        """The active snapshot, with the risk freezes of the attached replica merged in."""
        current = self._current
        if current is None or self._freezes is None:
            return current
        frozen = self._freezes.frozen
        merged = self._merged
        # Two identity checks per request; a new merge only when the version or the freezes change.
        if merged is None or merged[0] is not current or merged[1] is not frozen:
            snapshot = current.with_risk_frozen({wallet: f.reason for wallet, f in frozen.items()})
            self._merged = merged = (current, frozen, snapshot)
        return merged[2]

    def attach_freezes(self, freezes: FreezeReplica) -> None:
        """Merge the wallets frozen by risk checks into every snapshot this holder hands out."""
        self._freezes = freezes

    @property
    def shadow(self) -> PolicySnapshot | None:
        """The shadow version in effect (`policy publish --shadow`), compiled; None when there is none."""
        return self._shadow

    @property
    def age_seconds(self) -> float | None:
        """Seconds since the current snapshot's version was published."""
        current = self._current
        return None if current is None else max(0.0, time.time() - current.published_at)

    async def start(self) -> None:
        """Load what is active now (a failure leaves None and is retried by the poll), then follow."""
        # Bounded: an unreachable database must not hold up start-up (the poll retries).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.refresh(), timeout=self._start_timeout_s)
        self._tasks = [
            asyncio.create_task(follow(self._redis, self._channel, self._on_announcement)),
            asyncio.create_task(self._poll()),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    async def refresh(self) -> bool:
        """Load and swap in the active version if it differs from ours; True when swapped."""
        async with self._lock:
            try:
                active, shadow = await versions_in_effect(self._pool)
                await self._follow_shadow(shadow)
                snapshot = await self._load_if_changed(active)
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

    async def _follow_shadow(self, version: int | None) -> None:
        shadow = self._shadow
        if version is None:
            self._shadow = None
        elif shadow is None or shadow.version != version:
            stored = await load_version(self._pool, version, document_as_text=True)
            self._shadow = None if stored is None else await self._compile(stored)
            logger.info("policy version %d evaluated in shadow", version)

    async def _compile(self, stored: StoredPolicy) -> PolicySnapshot:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, compile_stored, stored)

    async def _load_if_changed(self, version: int | None) -> PolicySnapshot | None:
        # Nothing active (never published, or the table was emptied): keep what we decide with.
        if version is None or version == self._version():
            return None
        stored = await load_active(self._pool, document_as_text=True)
        if stored is None:
            return None
        return await self._compile(stored)

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

    async def _on_announcement(self, _message: bytes) -> None:
        await self.refresh()
