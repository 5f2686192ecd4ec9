"""`FreezeReplica`: the wallet freezes raised by risk checks, held in memory by a gateway process.

What the policy side consults on a synchronous decision (no I/O on the decision path): a
`shared.replica.Replica` of the freeze hash, reloaded when `risk:freezes:changed` announces a
change and every `poll_interval_s` to cover lost announcements, so a freeze reaches every gateway
within about a second. Wiring it into decisions (a frozen wallet answered REJECT `wallet_frozen`
with the freeze's reason) belongs to the policy engine.
"""

from __future__ import annotations

from collections.abc import Mapping

from redis.asyncio import Redis

from shared.keys import RedisKeys
from shared.replica import Replica
from shared.risk.freezes import Freeze, freezes_channel, frozen_wallets


class FreezeReplica(Replica[Mapping[str, Freeze]]):
    """Frozen wallets, by wallet id, kept current from Redis."""

    def __init__(self, redis: Redis, keys: RedisKeys, *, poll_interval_s: float = 1.0) -> None:
        # No cheaper change check than the hash itself: every poll reloads it whole.
        super().__init__(
            redis,
            freezes_channel(keys),
            lambda: frozen_wallets(redis, keys),
            {},
            name="freeze",
            poll_interval_s=poll_interval_s,
        )

    def get(self, wallet: str) -> Freeze | None:
        """The freeze on `wallet`, if any (a dict lookup: safe on the decision path)."""
        return self.current.get(wallet)

    @property
    def frozen(self) -> Mapping[str, Freeze]:
        """Every freeze; the same object until a reload swaps it (the policy holder merges on change)."""
        return self.current
