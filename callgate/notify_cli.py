"""`callgate subscribers add|list|disable|enable|rotate` and `callgate replay`.

Replays go through the queue like everything else: the notification keeps its `webhook-id` and a
worker delivers it; other dead-lettered jobs are enqueued again with their original arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import time

from shared.config import Settings
from shared.db import Pool, create_pool
from shared.errors import InvalidInput
from shared.keys import RedisKeys
from shared.notify import replay, subscribers
from shared.notify.breaker import breaker_states
from shared.queue import enqueue_jobs
from shared.redis import create_redis
from shared.times import parse_time


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `subscribers` and `replay` verbs."""
    subs = sub.add_parser("subscribers", help="where notifications go")
    verbs = subs.add_subparsers(dest="subscribers_command", required=True)
    add = verbs.add_parser("add", help="add a subscriber; prints its whsec_ signing secret once")
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--types", default="", help="comma-separated event types, `provider.*` or `*` (default: all)")
    add.add_argument("--secret", default=None, help="a whsec_ secret to use instead of a generated one")
    verbs.add_parser("list", help="print every subscriber with its breaker state")
    for verb in ("disable", "enable"):
        one = verbs.add_parser(verb, help=f"{verb} a subscriber")
        one.add_argument("name")
        if verb == "disable":
            one.add_argument("--reason", default="disabled by an operator")
    rotate = verbs.add_parser("rotate", help="new secret; the old one keeps signing for --overlap-hours")
    rotate.add_argument("name")
    rotate.add_argument("--overlap-hours", type=float, default=24.0)
    again = sub.add_parser("replay", help="deliver notifications again (same webhook-id), re-enqueue dead letters")
    again.add_argument("--id", action="append", dest="ids", help="a notification id (repeat)")
    again.add_argument("--subscriber", help="only this subscriber's notifications")
    again.add_argument("--since", type=parse_time, help="created at or after (ISO 8601)")
    again.add_argument("--until", type=parse_time, help="created before (ISO 8601)")
    again.add_argument(
        "--status", action="append", choices=replay.STATUSES, help="which notifications (default: dead; repeat)"
    )
    again.add_argument("--dead-letters", action="store_true", help="also re-enqueue dead letters of other jobs")
    again.add_argument("--job", help="with --dead-letters: only this job's")


def subscribers_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run a `subscribers` sub-verb; 2 on a bad argument, 1 when the subscriber is unknown."""
    return asyncio.run(_subscribers(args, settings))


def replay_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `replay`; prints one line per job enqueued."""
    return asyncio.run(_replay(args, settings))


async def _subscribers(args: argparse.Namespace, settings: Settings) -> int:
    pool = await create_pool(settings.database_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            verb = args.subscribers_command
            if verb == "add":
                types = [t.strip() for t in args.types.split(",") if t.strip()]
                try:
                    sub, secret = await subscribers.add(
                        conn, args.name, args.url, event_types=types, secret=args.secret
                    )
                except InvalidInput as e:
                    print(f"callgate: {e}")
                    return 2
                print(f"subscriber {sub.id} {sub.name} -> {sub.url}")
                print(f"secret {secret}")
                return 0
            if verb == "list":
                return await _list(pool, settings)
            if verb == "rotate":
                try:
                    secret = await subscribers.rotate_secret(
                        conn, args.name, overlap=dt.timedelta(hours=args.overlap_hours)
                    )
                except InvalidInput as e:
                    print(f"callgate: {e}")
                    return 1
                print(f"secret {secret}")
                return 0
            found = await subscribers.set_enabled(
                conn, args.name, verb == "enable", reason=getattr(args, "reason", None)
            )
            print(f"{args.name}: {verb}d" if found else f"callgate: no subscriber named {args.name!r}")
            return 0 if found else 1
    finally:
        await pool.close()


async def _list(pool: Pool, settings: Settings) -> int:
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    try:
        async with pool.acquire() as conn:
            listed = await subscribers.list_all(conn)
        breakers = await breaker_states(redis, RedisKeys(settings.key_prefix), [s.id for s in listed], time.time())
        for s in listed:
            state = "enabled" if s.enabled else f"disabled ({s.disabled_reason})"
            types = ",".join(s.event_types) or "*"
            print(f"{s.id}\t{s.name}\t{state}\tbreaker={breakers[s.id]}\t{types}\t{s.url}")
    finally:
        await redis.aclose()
    return 0


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    selection = replay.Selection(
        ids=args.ids,
        subscriber=args.subscriber,
        since=args.since,
        until=args.until,
        statuses=args.status,
    )
    pool = await create_pool(settings.database_url, max_size=2)
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    try:
        async with pool.acquire() as conn:
            picked = await replay.notifications(conn, selection)
            letters = (
                await replay.dead_letters(conn, job=args.job, since=args.since, until=args.until)
                if args.dead_letters
                else []
            )
        # Enqueued after the rows are reset: a job that ran first would find nothing to do.
        jobs = replay.delivery_jobs(picked) + [replay.letter_job(x.job, x.args, x.id) for x in letters]
        # One round trip for all of them; each is a no-op if that attempt or letter is already queued.
        await enqueue_jobs(redis, settings.queue_name, jobs)
        for notification_id, attempt in picked:
            print(f"notification {notification_id} attempt {attempt}")
        for letter in letters:
            print(f"dead letter {letter.id} {letter.job}")
    finally:
        await redis.aclose()
        await pool.close()
    print(f"replayed {len(picked)} notifications, {len(letters)} dead letters")
    return 0
