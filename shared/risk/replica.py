"""`FreezeReplica`: the wallet freezes raised by risk checks, held in memory by a gateway process.

What the policy side consults on a synchronous decision (no I/O on the decision path): it
reloads the freeze hash when `risk:freezes:changed` announces a change and polls it every
`poll_interval_s` to cover lost announcements, so a freeze reaches every gateway within about a
second. Wiring it into decisions (a frozen wallet answered REJECT `wallet_frozen` with the
freeze's reason) belongs to the policy engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.channels import follow, stop_tasks
from shared.keys import RedisKeys
from shared.risk.freezes import Freeze, freezes_channel, frozen_wallets

logger = logging.getLogger(__name__)


class FreezeReplica:
    """Frozen wallets, by wallet id, kept current from Redis."""

    def __init__(self, redis: Redis, keys: RedisKeys, *, poll_interval_s: float = 1.0) -> None:
        self._redis, self._keys, self._poll_interval_s = redis, keys, poll_interval_s
        self._frozen: Mapping[str, Freeze] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, wallet: str) -> Freeze | None:
        """The freeze on `wallet`, if any (a dict lookup: safe on the decision path)."""
        return self._frozen.get(wallet)

    @property
    def frozen(self) -> Mapping[str, Freeze]:
        return self._frozen

    async def start(self) -> None:
        """Load once (a failure is retried by the poll), then follow announcements and poll."""
        with contextlib.suppress(RedisError, OSError):
            await self.reload()
        self._tasks = [
            asyncio.create_task(follow(self._redis, freezes_channel(self._keys), self._on_message)),
            asyncio.create_task(self._poll()),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)

    async def reload(self) -> None:
        # One reference swap: a reader sees the old set or the new one, never half of each.
        self._frozen = await frozen_wallets(self._redis, self._keys)

    async def _on_message(self, _: bytes) -> None:
        await self.reload()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                await self.reload()
            except (RedisError, OSError) as e:
                logger.warning("freeze replica reload failed: %s", type(e).__name__)
