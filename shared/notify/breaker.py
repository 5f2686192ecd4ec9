"""Per-subscriber circuit breaker and concurrency cap, in Redis so every worker shares them.

One hash per subscriber: `failures` (consecutive), `open_until` (ms), `probe` (ms, the half-open
trial in flight), and one sorted set of in-flight attempt tokens scored by their expiry. A dead
endpoint thus costs at most `breaker_threshold` attempts and `max_inflight` worker slots; every
other delivery for it waits without touching the network, and no other subscriber waits at all.

    closed ──threshold failures──▶ open ──cooldown──▶ half-open (one probe) ──ok──▶ closed
                                     ▲                              │
                                     └──────────fail────────────────┘
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.keys import RedisKeys
from shared.redis import ScriptRunner, run_script

# KEYS: state hash, in-flight zset. ARGV: now ms, token, slot ttl ms, max in-flight.
# Returns {wait_ms, state}: wait_ms 0 means go (a slot is held under `token`);
# state 0 closed, 1 open, 2 half-open probe.
_ACQUIRE = """
local now = tonumber(ARGV[1])
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
local state = 0
if open_until > 0 then
  if now < open_until then return {open_until - now, 1} end
  local probe = tonumber(redis.call('HGET', KEYS[1], 'probe') or '0')
  if probe > 0 and now - probe < tonumber(ARGV[3]) then return {probe + tonumber(ARGV[3]) - now, 2} end
  redis.call('HSET', KEYS[1], 'probe', now)
  state = 2
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  if state == 2 then redis.call('HDEL', KEYS[1], 'probe') end
  return {250, 0}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return {0, state}
"""

# KEYS: state hash, in-flight zset. ARGV: token, ok (1/0), now ms, threshold, cooldown ms, ttl ms.
# Returns 1 when this call opened (or re-opened) the breaker, -1 when it closed it, else 0.
_RELEASE = """
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == '1' then
  if redis.call('HGET', KEYS[1], 'open_until') then
    redis.call('DEL', KEYS[1])
    return -1
  end
  redis.call('HDEL', KEYS[1], 'failures')
  return 0
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[6]))
local reopen = redis.call('HGET', KEYS[1], 'probe')
if not reopen and redis.call('HGET', KEYS[1], 'open_until') then return 0 end  -- late failure, already open
if reopen or failures >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[3]) + tonumber(ARGV[5]))
  redis.call('HDEL', KEYS[1], 'probe')
  return 1
end
return 0
"""

STATE_TTL_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Gate:
    """The breaker's answer: go now (`wait_s == 0`, a slot is held), or come back later."""

    wait_s: float
    state: str  # closed | open | half_open


_STATES = ("closed", "open", "half_open")


class Breaker:
    """The breakers of every subscriber, over one Redis connection."""

    def __init__(
        self,
        redis: Redis,
        keys: RedisKeys,
        *,
        threshold: int,
        cooldown_s: float,
        max_inflight: int,
        slot_ttl_s: float,
        run: ScriptRunner | None = None,
    ) -> None:
        self._redis = redis
        self._run = run or run_script
        self._keys = keys
        self._threshold = threshold
        self._cooldown_ms = int(cooldown_s * 1000)
        self._max_inflight = max_inflight
        self._slot_ttl_ms = int(slot_ttl_s * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    def _names(self, subscriber_id: int) -> list[str]:
        base = _state_key(self._keys, subscriber_id)
        return [base, base + ":inflight"]

    async def acquire(self, subscriber_id: int, token: str, now: float) -> Gate:
        """Take an attempt slot unless the breaker is open or the subscriber is at its cap."""
        args: list[str | int] = [int(now * 1000), token, self._slot_ttl_ms, self._max_inflight]
        wait_ms, state = await self._run(self._acquire, self._names(subscriber_id), args)
        return Gate(int(wait_ms) / 1000, _STATES[int(state)])

    async def release(self, subscriber_id: int, token: str, *, ok: bool, now: float) -> int:
        """Give the slot back and count the outcome; 1 opened the breaker, -1 closed it, 0 neither."""
        args: list[str | int] = [
            token,
            1 if ok else 0,
            int(now * 1000),
            self._threshold,
            self._cooldown_ms,
            STATE_TTL_MS,
        ]
        return int(await self._run(self._release, self._names(subscriber_id), args))


def _state_key(keys: RedisKeys, subscriber_id: int) -> str:
    return keys.namespace(f"notify:breaker:{subscriber_id}")


async def breaker_states(redis: Redis, keys: RedisKeys, subscriber_ids: Sequence[int], now: float) -> dict[int, str]:
    """Each subscriber's breaker as the workers share it: closed, open, or half_open (cooldown
    over, waiting for a probe). Read-only, one round trip, for the admin API, console and CLI."""
    pipe = redis.pipeline(transaction=False)
    for subscriber_id in subscriber_ids:
        pipe.hget(_state_key(keys, subscriber_id), "open_until")
    values = await pipe.execute()
    return {
        subscriber_id: "closed" if value is None else "open" if now * 1000 < int(value) else "half_open"
        for subscriber_id, value in zip(subscriber_ids, values, strict=True)
    }
