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


async def follow(
    redis: Redis,
    channel: str,
    handle: Callable[[bytes], Awaitable[object]],
    on_subscribed: Callable[[], object] | None = None,
) -> None:
    """Forever: hand each message of `channel` to `handle`; resubscribe after a Redis failure.
    `on_subscribed` is called each time Redis confirms the subscription, so a follower can load
    the state after it and miss nothing announced in between."""
    while not stop_requested():
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                while not stop_requested():
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
RECANCEL_S = 0.2


def stop_requested() -> bool:
    """Whether the running task was cancelled, even if the cancellation never reached it as an
    exception: some awaits we do not own swallow it (`asyncio.wait_for` on Python 3.11, which
    redis-py uses to send; asyncpg while it cancels a query). A background loop checks this each
    round, or it runs on after `stop_tasks` has given up on it, against closed pools."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_tasks(tasks: Iterable[asyncio.Task[None]], *, stopping: asyncio.Event | None = None) -> None:
    """Stop background tasks and wait for them, a bounded time.

    With `stopping`, the tasks end their round and return once it is set (see `pause`): they
    are not cancelled unless that takes longer than STOP_WAIT_S. A poll cancelled mid-query is
    what made shutdowns hang: asyncpg then cancels the query on the server and waits for it
    (seconds, sometimes tens), and the cancellation may never reach our loop as an exception.
    Without `stopping` (a pub/sub read, safe to interrupt) they are cancelled at once."""
    pending = [task for task in tasks if not task.done()]
    if stopping is not None and pending:
        stopping.set()
        _, still = await asyncio.wait(pending, timeout=STOP_WAIT_S)
        pending = list(still)
    deadline = asyncio.get_running_loop().time() + STOP_WAIT_S
    while pending and (left_s := deadline - asyncio.get_running_loop().time()) > 0:
        # Again each round: a cancellation swallowed by an await we do not own is delivered anew
        # at the loop's next await (`while True` loops that do not check `stop_requested`).
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=min(RECANCEL_S, left_s))
        pending = list(still)
    for task in pending:
        logger.warning("background task %s still closing after %.0fs; left behind", task.get_name(), STOP_WAIT_S)


async def pause(stopping: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` between two rounds of a background loop; False once it should stop
    (`stopping` set, or the task cancelled)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stopping.wait()
    return not stopping.is_set() and not stop_requested()
