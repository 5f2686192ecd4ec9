"""Sliding-window counts and sums in Redis, idempotent per event.

Each scope (a wallet, a counterparty, a wallet's asset) is a sorted set of `<event>|<amount>`
members scored by the event's time. Adding the same event twice changes nothing, so a re-run
check counts it once; members older than the longest window are trimmed on every add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from redis.asyncio import Redis

from shared.redis import ScriptRunner, run_script

# KEYS: scope zsets. ARGV: event ms, member, horizon ms, window count n, then per window its
# length (ms) and whether to sum amounts (1/0). Returns, per key, per window: {count, sum}.
# Counting is ZCOUNT (O(log n)); summing walks the window's members, so only windows with an
# amount limit pay for it.
_ADD_AND_MEASURE = """
local at, member, horizon, n = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, at, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (at - horizon))
  redis.call('PEXPIRE', key, horizon)
  for w = 1, n do
    local since = at - tonumber(ARGV[3 + 2 * w])
    local total = 0
    if ARGV[4 + 2 * w] == '1' then
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, since, '+inf')) do
        total = total + (tonumber(string.match(m, '|([^|]*)$')) or 0)
      end
    end
    out[#out + 1] = {redis.call('ZCOUNT', key, since, '+inf'), tostring(total)}
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Measure:
    """Events and their summed amount in one scope over one window (the event included)."""

    scope: str
    window_s: int
    count: int
    total: Decimal


class Velocity:
    def __init__(self, redis: Redis, prefix: str, *, run: ScriptRunner | None = None) -> None:
        self._prefix = prefix
        self._script = redis.register_script(_ADD_AND_MEASURE)
        self._run = run or run_script

    async def add(
        self,
        scopes: Sequence[str],
        *,
        event: str,
        at: float,
        amount: Decimal | None,
        windows_s: Sequence[int],
        summed: Sequence[bool] | None = None,
    ) -> list[Measure]:
        """Record the event in every scope and measure each window, in one round trip.

        `summed[i]` says whether window i needs the amount total (else its total is 0).
        """
        if not scopes or not windows_s:
            return []
        keys = [f"{self._prefix}:{scope}" for scope in scopes]
        args: list[str | int] = [int(at * 1000), f"{event}|{amount or 0}", max(windows_s) * 1000, len(windows_s)]
        for window, wanted in zip(windows_s, summed or [False] * len(windows_s), strict=True):
            args += [window * 1000, 1 if wanted else 0]
        flat = await self._run(self._script, keys, args)
        measures = []
        for i, (count, total) in enumerate(flat):
            scope, window = scopes[i // len(windows_s)], windows_s[i % len(windows_s)]
            measures.append(
                Measure(scope, window, int(count), Decimal(total.decode() if isinstance(total, bytes) else total))
            )
        return measures
