"""`WalletReplica`: the UCW wallet registry (wallet_uuid -> vault_id) in a gateway process's memory.

The UCW callback route checks every report's wallet against the registry; asking Redis each time
was most of that route's cost and made the route answer 503 whenever Redis was down, although the
report itself could be spooled. The replica loads the registry at start, reloads it when a change
is announced, and compares the registry's version every `poll_interval_s` (and reloads it whole
every `full_reload_s`), so a change reaches every gateway within about a second even when an
announcement is lost. A wallet it does not know is still asked of Redis (`find`): see there why.
A wallet re-pointed to another vault (rare, an operator's act) may be stamped with its old vault
by a gateway for up to that second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.channels import follow, stop_tasks
from shared.keys import RedisKeys
from shared.providers.cobo_ucw_store import load_wallets, vault_of, wallets_channel, wallets_version

logger = logging.getLogger(__name__)

_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class WalletReplica:
    """Registered UCW wallets and their vaults, kept current from Redis."""

    def __init__(
        self, redis: Redis, keys: RedisKeys, *, poll_interval_s: float = 0.5, full_reload_s: float = 30.0
    ) -> None:
        self._redis, self._keys = redis, keys
        self._poll_interval_s, self._full_reload_s = poll_interval_s, full_reload_s
        self._vaults: dict[str, str] = {}
        self._version = 0
        self._tasks: list[asyncio.Task[None]] = []

    def get(self, wallet_uuid: str) -> str | None:
        """The vault of a wallet this replica knows (a dict read, no I/O)."""
        return self._vaults.get(wallet_uuid)

    def __len__(self) -> int:
        return len(self._vaults)

    async def find(self, wallet_uuid: str) -> str | None:
        """The vault of `wallet_uuid`: from memory, else from Redis (raises Redis errors).

        A registration is acknowledged to the operator once it is in Postgres and Redis; the
        registrar cannot know how many gateways run, let alone wait for each. So a wallet the
        replica does not know yet (registered a moment ago, announcement still on its way) is
        asked of Redis before anyone is told 404: registered wallets never get a false 404, and
        only unknown wallets, which are refused anyway, cost a round trip.
        """
        vault = self._vaults.get(wallet_uuid)
        return vault if vault is not None else await vault_of(self._redis, self._keys, wallet_uuid)

    async def start(self) -> None:
        """Load once (a failure is retried by the poll), then follow announcements and poll."""
        with contextlib.suppress(*_REDIS_ERRORS):
            await self.reload()
        self._tasks = [
            asyncio.create_task(follow(self._redis, wallets_channel(self._keys), self._on_message)),
            asyncio.create_task(self._poll()),
        ]

    async def stop(self) -> None:
        await stop_tasks(self._tasks)
        self._tasks = []

    async def reload(self) -> None:
        # One reference swap: a reader sees the old registry or the new one, never half of each.
        self._version, self._vaults = await load_wallets(self._redis, self._keys)

    async def _on_message(self, _: bytes) -> None:
        await self.reload()

    async def _poll(self) -> None:
        next_full = time.monotonic() + self._full_reload_s
        while True:
            await asyncio.sleep(self._poll_interval_s)
            try:
                # A version that differs either way (a lost announcement, or a Redis that lost
                # the registry and restarted the counter) means reload; the periodic whole reload
                # covers a counter that came back to the very same number.
                if await wallets_version(self._redis, self._keys) != self._version or time.monotonic() >= next_full:
                    next_full = time.monotonic() + self._full_reload_s
                    await self.reload()
            except _REDIS_ERRORS as e:
                logger.warning("UCW wallet replica reload failed (retried next round): %s", type(e).__name__)
