"""Every Redis key and channel name callgate uses, in one place.

arq's own keys (`arq:job:<id>`, `arq:result:<id>`, `arq:in-progress:<id>`, `arq:retry:<id>`) are
fixed by arq and live in `shared.queue`; everything else is ours, under a configurable prefix so
that several deployments (or test sessions) can share one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = "callgate"

    def dedup(self, provider: str, key_hash: str) -> str:
        """Done-marker of an accepted callback: set atomically with its enqueue."""
        return f"{self.prefix}:dedup:{provider}:{key_hash}"

    def memo(self, provider: str, key_hash: str) -> str:
        """The synchronous answer first given to a request id (same question, same answer)."""
        return f"{self.prefix}:memo:{provider}:{key_hash}"

    @property
    def policy_channel(self) -> str:
        return f"{self.prefix}:policy"

    @property
    def orders_channel(self) -> str:
        return f"{self.prefix}:orders"

    # >>> expected-order registry (shared/orders.py)
    @property
    def orders(self) -> str:
        """Hash: "<provider>\\n<order_ref>" -> order JSON, the replicas' source."""
        return f"{self.prefix}:orders:all"

    @property
    def orders_confirmed(self) -> str:
        """Hash: "<provider>\\n<order_ref>" -> confirmation time; HSETNX makes confirming atomic."""
        return f"{self.prefix}:orders:confirmed"

    @property
    def orders_seq(self) -> str:
        """Counter bumped with every change, so a replica can tell it missed an announcement."""
        return f"{self.prefix}:orders:seq"

    @property
    def orders_unpersisted(self) -> str:
        """Set of confirmations not yet written to Postgres."""
        return f"{self.prefix}:orders:unpersisted"

    @property
    def orders_expiry(self) -> str:
        """Sorted set: order field scored by its expiry, so expired orders can be pruned."""
        return f"{self.prefix}:orders:expiry"

    # <<< expected-order registry

    def namespace(self, name: str) -> str:
        """A key in a provider's own namespace, for state nothing else shares."""
        return f"{self.prefix}:{name}"
