"""The expected-order registry: withdrawals the merchant's backend really initiated.

Postgres (`expected_orders`) is the record; Redis carries what the gateways decide with: a hash of
every order, a hash of confirmations, a change counter, and an announcement per change on the
orders channel. Each gateway keeps an in-process replica (`shared.order_replica.OrderReplica`),
so a decision never waits on a database.

Registering writes Postgres first, then Redis (a registration that could not reach Redis is
answered as a failure and is safe to repeat). Confirming (a second confirmation consumed the
order) is one Lua script: the first gateway to confirm wins, everywhere; the confirmation is then
written to Postgres by `persist_confirmations`, which every gateway runs in the background.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import asyncpg
from redis.asyncio import Redis

from shared.db import Pool
from shared.errors import InputError, InvalidInput
from shared.keys import RedisKeys
from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.model import ExpectedOrder

MAX_TEXT = 256
_ORDER_KEYS = frozenset(
    {"provider", "order_ref", "chain", "asset", "destination", "amount", "expires_at", "expires_in", "extras"}
)

# KEYS: orders hash, change counter, expiry zset; ARGV: field, order JSON, channel, now, expires_at|""
_PUT_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1]) end
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], cjson.encode({op='put', seq=seq, at=ARGV[4], field=ARGV[1], order=ARGV[2]}))
return seq
"""

# KEYS: orders hash, confirmed hash, expiry zset, change counter; ARGV: cutoff, channel, now, limit
# Drops orders that expired before `cutoff` (a decision about them is a rejection either way).
_PRUNE_LUA = """
local fields = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
if #fields == 0 then return 0 end
for _, field in ipairs(fields) do
    redis.call('HDEL', KEYS[1], field)
    redis.call('HDEL', KEYS[2], field)
    redis.call('ZREM', KEYS[3], field)
end
local seq = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[2], cjson.encode({op='drop', seq=seq, at=ARGV[3], field='', fields=fields}))
return #fields
"""

# KEYS: change counter; ARGV: clock in ms. Moves the counter to max(counter + 1, clock).
_BUMP_LUA = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then return redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[1])
"""

# KEYS: orders hash, confirmed hash, change counter, unpersisted set; ARGV: field, now, channel
# Returns -1 for an unknown order, 0 when another confirmation won, 1 when this one did.
_CONFIRM_LUA = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SADD', KEYS[4], ARGV[1])
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[3], cjson.encode({op='confirm', seq=seq, at=ARGV[2], field=ARGV[1]}))
return 1
"""


class OrderConflict(InputError):
    """An order with this (provider, order_ref) exists with different content."""

    def __init__(self, provider: str, order_ref: str) -> None:
        super().__init__(provider, order_ref)
        self.provider, self.order_ref = provider, order_ref

    def __str__(self) -> str:
        return f"order {self.provider}/{self.order_ref} already registered with other details"


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """An order as the database records it."""

    order: ExpectedOrder
    created_at: float
    confirmed_at: float | None


def field_name(provider: str, order_ref: str) -> str:
    """The Redis hash field of an order (a newline cannot occur in either part)."""
    return f"{provider}\n{order_ref}"


# -- parsing ---------------------------------------------------------------------------------


def parse_order(data: object, *, now: float | None = None) -> ExpectedOrder:
    """An order to register, from the admin API's JSON; raises InvalidInput naming the field."""
    if not isinstance(data, dict):
        raise InvalidInput("$", "expected a JSON object")
    for key in data:
        if key not in _ORDER_KEYS:
            raise InvalidInput(str(key)[:50], "unknown field")
    provider = _text(data, "provider").lower()
    if not provider.replace("_", "").isalnum():
        raise InvalidInput("provider", "letters, digits and _ only")
    return ExpectedOrder(
        provider=provider,
        order_ref=_text(data, "order_ref"),
        chain=normalize_symbol(_text(data, "chain")),
        asset=normalize_symbol(_text(data, "asset")),
        destination=normalize_address(_text(data, "destination")),
        amount=_amount(data.get("amount")),
        expires_at=_expiry(data, time.time() if now is None else now),
        extras=_extras(data.get("extras")),
    )


def _text(data: dict[Any, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(key, "required, a non-empty string")
    if len(value) > MAX_TEXT or "\n" in value or not value.isprintable():
        raise InvalidInput(key, f"at most {MAX_TEXT} printable characters")
    return value.strip()


def _amount(value: object) -> Decimal:
    # Strings (or integers) only: a JSON float has already lost the exact amount.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("amount", "required, a decimal string")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidInput("amount", "not a decimal") from None
    if not amount.is_finite() or amount <= 0 or len(value if isinstance(value, str) else str(value)) > 80:
        raise InvalidInput("amount", "must be a positive decimal")
    return amount


def _expiry(data: dict[Any, Any], now: float) -> float | None:
    if data.get("expires_at") is not None and data.get("expires_in") is not None:
        raise InvalidInput("expires_in", "give expires_at or expires_in, not both")
    for key, base in (("expires_at", 0.0), ("expires_in", now)):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e11:
            raise InvalidInput(key, "seconds: a positive number")
        return base + float(value)
    return None


def _extras(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or len(value) > 32:
        raise InvalidInput("extras", "an object of at most 32 string or number values")
    extras: list[tuple[str, str]] = []
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int) or len(str(item)) > MAX_TEXT:
            raise InvalidInput(f"extras.{str(key)[:50]}", "a string or an integer")
        extras.append((str(key)[:64], str(item)))
    return tuple(extras)


def order_to_data(order: ExpectedOrder) -> dict[str, object]:
    """The JSON form of an order (amount as a string), as Redis and the admin API carry it."""
    return {
        "provider": order.provider,
        "order_ref": order.order_ref,
        "chain": order.chain,
        "asset": order.asset,
        "destination": order.destination,
        "amount": str(order.amount),
        "expires_at": order.expires_at,
        "confirmed": order.confirmed,
        "extras": dict(order.extras),
    }


def order_from_json(raw: bytes | str, *, confirmed: bool = False) -> ExpectedOrder:
    """An order from the Redis hash (written by `register`; parsed again all the same)."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise InvalidInput("$", "expected a JSON object")
    data.pop("confirmed", None)
    order = parse_order(data, now=0.0)
    return ExpectedOrder(**{**_fields(order), "confirmed": confirmed})


def _fields(order: ExpectedOrder) -> dict[str, Any]:
    return {name: getattr(order, name) for name in ExpectedOrder.__slots__}


# -- registry operations ---------------------------------------------------------------------

_INSERT = """
INSERT INTO expected_orders (provider, order_ref, chain, asset, destination, amount, expires_at, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (provider, order_ref) DO NOTHING
RETURNING id
"""
_SELECT = (
    "SELECT provider, order_ref, chain, asset, destination, amount, expires_at, confirmed_at, created_at, payload"
    " FROM expected_orders"
)
_SELECT_ONE = _SELECT + " WHERE provider = $1 AND order_ref = $2"
_SELECT_LATEST = _SELECT + " WHERE ($1::text IS NULL OR provider = $1) ORDER BY created_at DESC, id DESC LIMIT $2"
_SELECT_CURRENT = _SELECT + " WHERE expires_at IS NULL OR expires_at > to_timestamp($1)"
_CONFIRM_ROW = """
UPDATE expected_orders SET confirmed_at = to_timestamp($3)
WHERE provider = $1 AND order_ref = $2 AND confirmed_at IS NULL
"""


async def register(pool: Pool, redis: Redis, keys: RedisKeys, order: ExpectedOrder) -> tuple[StoredOrder, bool]:
    """Record `order` and publish it to the replicas; (stored, created). Registering the same order
    again is a no-op that re-publishes it; the same reference with other details is OrderConflict."""
    async with pool.acquire() as conn:
        created = await conn.fetchval(_INSERT, *_row(order)) is not None
        stored = _stored(await conn.fetchrow(_SELECT_ONE, order.provider, order.order_ref))
    if not created and not _same(stored.order, order):
        raise OrderConflict(order.provider, order.order_ref)
    # What the database holds is published (a repeated registration keeps its first expiry), and
    # a confirmation it knows of is restored too: Redis may have lost both.
    put = redis.register_script(_PUT_LUA)
    await put(
        keys=[keys.orders, keys.orders_seq, keys.orders_expiry],
        args=[
            field_name(order.provider, order.order_ref),
            json.dumps(order_to_data(stored.order)),
            keys.orders_channel,
            repr(time.time()),
            "" if stored.order.expires_at is None else repr(stored.order.expires_at),
        ],
    )
    if stored.order.confirmed:
        await confirm(redis, keys, order.provider, order.order_ref)
    return stored, created


def _same(a: ExpectedOrder, b: ExpectedOrder) -> bool:
    """Same order apart from its expiry and confirmation (a retried registration)."""
    return (a.provider, a.order_ref, a.chain, a.asset, a.destination, a.amount) == (
        b.provider, b.order_ref, b.chain, b.asset, b.destination, b.amount
    ) and dict(a.extras) == dict(b.extras)  # fmt: skip


async def resync(pool: Pool, redis: Redis, keys: RedisKeys, *, retain_expired_s: float = 86400.0) -> int:
    """Rebuild the Redis side from Postgres (after Redis lost its data): every order not expired
    for longer than `retain_expired_s`, with its confirmation. Replicas notice the bumped counter
    at their next poll and reload. Returns how many orders were written."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_SELECT_CURRENT, time.time() - retain_expired_s)
    for start in range(0, len(rows), 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows[start : start + 1000]:
                order = _stored(row).order
                field = field_name(order.provider, order.order_ref)
                pipe.hset(keys.orders, field, json.dumps(order_to_data(order)))
                if order.expires_at is not None:
                    pipe.zadd(keys.orders_expiry, {field: order.expires_at})
                if row["confirmed_at"] is not None:
                    pipe.hsetnx(keys.orders_confirmed, field, repr(row["confirmed_at"].timestamp()))
            await pipe.execute()
    # Jump the counter to the clock (ms): after a flush it restarted low and could equal a stale
    # replica's own counter, which would then never reload.
    bump = redis.register_script(_BUMP_LUA)
    await bump(keys=[keys.orders_seq], args=[int(time.time() * 1000)])
    return len(rows)


async def list_orders(pool: Pool, *, provider: str | None = None, limit: int = 100) -> list[StoredOrder]:
    """The latest registered orders, newest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_SELECT_LATEST, provider, limit)
    return [_stored(row) for row in rows]


async def confirm(redis: Redis, keys: RedisKeys, provider: str, order_ref: str) -> bool:
    """Atomically mark an order consumed, across every gateway; False when it was already (or is
    not registered)."""
    script = redis.register_script(_CONFIRM_LUA)
    result = await script(
        keys=[keys.orders, keys.orders_confirmed, keys.orders_seq, keys.orders_unpersisted],
        args=[field_name(provider, order_ref), repr(time.time()), keys.orders_channel],
    )
    return int(result) == 1


async def prune_expired(redis: Redis, keys: RedisKeys, *, older_than_s: float, limit: int = 1000) -> int:
    """Drop from Redis (not from Postgres) up to `limit` orders expired more than `older_than_s`
    ago, so replicas stay bounded; returns how many were dropped."""
    script = redis.register_script(_PRUNE_LUA)
    now = time.time()
    dropped = await script(
        keys=[keys.orders, keys.orders_confirmed, keys.orders_expiry, keys.orders_seq],
        args=[repr(now - older_than_s), keys.orders_channel, repr(now), limit],
    )
    return int(dropped)


async def persist_confirmations(pool: Pool, redis: Redis, keys: RedisKeys, *, limit: int | None = None) -> int:
    """Write confirmations made in Redis to Postgres (idempotent), at most `limit` of them (a
    caller that must stop soon works in batches); returns how many were written."""
    # A batch is read as a batch: the whole set again for each one would make a backlog quadratic.
    unpersisted = keys.orders_unpersisted
    read = redis.smembers(unpersisted) if limit is None else redis.srandmember(unpersisted, limit)
    fields = await cast(Awaitable[Iterable[bytes]], read)
    written = 0
    for raw in fields:
        field = raw.decode()
        at = await cast(Awaitable[bytes | None], redis.hget(keys.orders_confirmed, field))
        provider, _, order_ref = field.partition("\n")
        if at is not None:
            async with pool.acquire() as conn:
                await conn.execute(_CONFIRM_ROW, provider, order_ref, float(at))
            written += 1
        await cast(Awaitable[int], redis.srem(keys.orders_unpersisted, raw))
    return written


def _row(order: ExpectedOrder) -> tuple[object, ...]:
    expires = None if order.expires_at is None else dt.datetime.fromtimestamp(order.expires_at, dt.UTC)
    return (order.provider, order.order_ref, order.chain, order.asset, order.destination, order.amount, expires,
            dict(order.extras))  # fmt: skip


def _stored(row: asyncpg.Record | None) -> StoredOrder:
    assert row is not None  # inserted or found just before: a programmer error otherwise
    expires_at, confirmed_at, created_at = row["expires_at"], row["confirmed_at"], row["created_at"]
    payload = row["payload"] or {}
    order = ExpectedOrder(
        provider=row["provider"],
        order_ref=row["order_ref"],
        chain=row["chain"],
        asset=row["asset"],
        destination=row["destination"],
        amount=row["amount"],
        expires_at=None if expires_at is None else expires_at.timestamp(),
        confirmed=confirmed_at is not None,
        extras=tuple((str(k), str(v)) for k, v in payload.items()),
    )
    return StoredOrder(order, created_at.timestamp(), None if confirmed_at is None else confirmed_at.timestamp())
