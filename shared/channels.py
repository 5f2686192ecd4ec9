"""Following a Redis pub/sub channel from a background task, and stopping such tasks.

Announcements are hints: every follower here also polls the state it follows, so a message lost
while reconnecting costs a poll interval, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

RETRY_S = 1.0


async def follow(
    redis: Redis,
    channel: str,
    handle: Callable[[bytes], Awaitable[object]],
    on_subscribed: Callable[[], object] | None = None,
) -> None:
    """Forever: hand each message of `channel` to `handle`; resubscribe after a Redis failure.
    `on_subscribed` is called each time Redis confirms the subscription, so a follower can load
    the state after it and miss nothing announced in between."""
    while True:
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                while True:
                    # get_message with a timeout, not listen(): the client's socket timeout would
                    # turn a quiet channel into an error.
                    message = await pubsub.get_message(timeout=1.0)
                    kind = None if message is None else message.get("type")
                    if kind == "message":
                        await handle(message["data"])
                    elif kind == "subscribe" and on_subscribed is not None:
                        on_subscribed()
        except (RedisError, OSError) as e:
            logger.warning("channel %s lost (%s); resubscribing, the poll covers the gap", channel, e)
            await asyncio.sleep(RETRY_S)


STOP_WAIT_S = 2.0


async def stop_tasks(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel background tasks and wait for them, a bounded time: a pub/sub connection cancelled
    mid-read may wait out its socket timeout while closing, and shutdown must not hang on it."""
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, stuck = await asyncio.wait(pending, timeout=STOP_WAIT_S)
        for task in stuck:
            logger.warning("background task %s still closing after %.0fs; left behind", task.get_name(), STOP_WAIT_S)
