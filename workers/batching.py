"""Redis script calls of many jobs sent as one pipeline.

The jobs of one claimed batch (or of one group commit) resume together and each runs its own
scripts: a velocity measurement, a breaker slot taken and given back. Sent one by one, each is a
socket write, a read and a parse, which under load cost more worker CPU than the scripts cost
Redis. `ScriptBatch.run` gathers the calls made in one event-loop iteration into one pipeline:
one write and one read for all of them. Each call's result (or its own error) goes back to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from shared.queue import Coalescer

# Breaker releases follow HTTP answers that arrive a moment apart: waiting this long for company
# turns several round trips into one, at a cost no latency goal notices.
WINDOW_S = 0.002


@dataclass(frozen=True, slots=True)
class _Call:
    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[Any]


class ScriptBatch:
    """Run registered scripts, many callers' calls per round trip (see the module docstring)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._calls: Coalescer[_Call, Any] = Coalescer(self._send, window_s=WINDOW_S)

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """What `await script(keys=keys, args=args)` returns; raises what it would raise."""
        (result,) = await self._calls([_Call(script, keys, args)])
        if isinstance(result, NoScriptError):
            # Redis restarted (or flushed its scripts): this call loads the script again.
            return await script(keys=list(keys), args=list(args))
        if isinstance(result, Exception):
            raise result
        return result

    async def _send(self, calls: list[_Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for c in calls:
                pipe.evalsha(c.script.sha, len(c.keys), *c.keys, *c.args)
            return list(await pipe.execute(raise_on_error=False))
