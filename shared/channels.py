"""Following a Redis pub/sub channel from a background task, and stopping such tasks.

Announcements are hints: every follower here also polls the state it follows, so a message lost
while reconnecting costs a poll interval, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RETRY_S = 1.0


async def follow(redis: Redis, channel: str, handle: Callable[[bytes], Awaitable[object]]) -> None:
    """Forever: hand each message of `channel` to `handle`; resubscribe after a Redis failure."""
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                while True:
                    # get_message with a timeout, not listen(): the client's socket timeout would
                    # turn a quiet channel into an error.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await handle(message["data"])
        except (RedisError, OSError) as e:
            logger.warning("channel %s lost (%s); resubscribing, the poll covers the gap", channel, e)
            await asyncio.sleep(RETRY_S)


async def stop_tasks(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait until they are gone."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task
