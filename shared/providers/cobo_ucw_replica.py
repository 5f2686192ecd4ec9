"""`WalletReplica`: the UCW wallet registry (wallet_uuid -> vault_id) in a gateway process's memory.

The UCW callback route checks every report's wallet against the registry; asking Redis each time
was most of that route's cost and made the route answer 503 whenever Redis was down, although the
report itself could be spooled. The replica (a `shared.replica.Replica` of the registry and its
version) loads the registry at start, reloads it when a change is announced, and compares the
registry's version every `poll_interval_s` (and reloads it whole every `full_reload_s`), so a
change reaches every gateway within about a second even when an announcement is lost. A wallet it
does not know is still asked of Redis (`find`): see there why. A wallet re-pointed to another
vault (rare, an operator's act) may be stamped with its old vault by a gateway for up to that
second.
"""

from __future__ import annotations

from redis.asyncio import Redis

from shared.keys import RedisKeys
from shared.providers.cobo_ucw_store import load_wallets, vault_of, wallets_channel, wallets_version
from shared.replica import Replica


class WalletReplica(Replica[tuple[int, dict[str, str]]]):
    """Registered UCW wallets and their vaults (with the registry's version), kept current from Redis."""

    def __init__(
        self, redis: Redis, keys: RedisKeys, *, poll_interval_s: float = 0.5, full_reload_s: float = 30.0
    ) -> None:
        self._keys = keys
        super().__init__(
            redis,
            wallets_channel(keys),
            lambda: load_wallets(redis, keys),
            (0, {}),
            name="UCW wallet",
            poll_interval_s=poll_interval_s,
            stale=self._version_moved,
            full_reload_s=full_reload_s,
        )

    def get(self, wallet_uuid: str) -> str | None:
        """The vault of a wallet this replica knows (a dict read, no I/O)."""
        return self.current[1].get(wallet_uuid)

    def __len__(self) -> int:
        return len(self.current[1])

    async def find(self, wallet_uuid: str) -> str | None:
        """The vault of `wallet_uuid`: from memory, else from Redis (raises Redis errors).

        A registration is acknowledged to the operator once it is in Postgres and Redis; the
        registrar cannot know how many gateways run, let alone wait for each. So a wallet the
        replica does not know yet (registered a moment ago, announcement still on its way) is
        asked of Redis before anyone is told 404: registered wallets never get a false 404, and
        only unknown wallets, which are refused anyway, cost a round trip.
        """
        vault = self.get(wallet_uuid)
        return vault if vault is not None else await vault_of(self._redis, self._keys, wallet_uuid)

    async def _version_moved(self) -> bool:
        # A version that differs either way (a lost announcement, or a Redis that lost the
        # registry and restarted the counter) means reload; the periodic whole reload covers a
        # counter that came back to the very same number. The version held is read after the
        # round trip, so a reload an announcement made meanwhile counts.
        return await wallets_version(self._redis, self._keys) != self.current[0]
