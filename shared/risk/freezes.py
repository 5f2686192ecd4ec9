"""Wallet freezes raised by risk checks: the API the policy side reads.

A freeze is a field of one Redis hash (`<prefix>:risk:freezes`, wallet -> JSON reason), and every
change is announced on `<prefix>:risk:freezes:changed` with the wallet as the message, so a
process that keeps a replica (the policy holder) can apply it at once and poll the hash to cover
lost announcements. `frozen_wallets` is that poll.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import orjson
from redis.asyncio import Redis

from shared.keys import RedisKeys


@dataclass(frozen=True, slots=True)
class Freeze:
    wallet: str
    reason: str  # a machine-readable code: deny_list, kyt_level, repeated_rejects, ...
    detail: str
    event: str  # provider:idempotency_key of the event that raised it
    at: float


def freezes_key(keys: RedisKeys) -> str:
    return keys.namespace("risk:freezes")


def freezes_channel(keys: RedisKeys) -> str:
    return keys.namespace("risk:freezes:changed")


async def freeze(redis: Redis, keys: RedisKeys, item: Freeze) -> bool:
    """Freeze a wallet unless it is frozen already (the first reason stays); True when new."""
    value = orjson.dumps({"reason": item.reason, "detail": item.detail, "event": item.event, "at": item.at}).decode()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(freezes_key(keys), item.wallet, value)
        pipe.publish(freezes_channel(keys), item.wallet)
        created, _ = await pipe.execute()
    return bool(created)


async def unfreeze(redis: Redis, keys: RedisKeys, wallet: str) -> bool:
    """Lift a freeze (an operator's decision); True when there was one."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(freezes_key(keys), wallet)
        pipe.publish(freezes_channel(keys), wallet)
        removed, _ = await pipe.execute()
    return bool(removed)


async def frozen_wallets(redis: Redis, keys: RedisKeys) -> dict[str, Freeze]:
    """Every current freeze, by wallet: what a policy replica merges into its wallet freeze list."""
    raw = cast(dict[bytes, bytes], await redis.hgetall(freezes_key(keys)))  # type: ignore[misc]
    out = {}
    for wallet_b, value in raw.items():
        data = orjson.loads(value)
        wallet = wallet_b.decode()
        out[wallet] = Freeze(wallet, str(data["reason"]), str(data["detail"]), str(data["event"]), float(data["at"]))
    return out
