"""Redis connections, configured one way for every process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

# How a script call is made: directly (`run_script`), or batched with other callers' in one
# pipeline (`workers.batching.ScriptBatch.run`).
ScriptRunner = Callable[[AsyncScript, Sequence[str], Sequence[str | int]], Awaitable[Any]]


async def run_script(script: AsyncScript, keys: Sequence[str], args: Sequence[str | int]) -> Any:
    """The direct `ScriptRunner`: one script call, one round trip."""
    return await script(keys=list(keys), args=list(args))


def create_redis(url: str, *, timeout_s: float) -> Redis:
    """A client that fails fast: a callback waits at most `timeout_s` before it is spooled.

    No automatic retries: the ingest path decides what a failure means (spool, 503).
    """
    client: Redis = Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
        decode_responses=False,
        max_connections=64,
    )
    return client
