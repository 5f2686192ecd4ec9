"""`callgate policy publish|check|test|activate|promote|rollback|diff|show`, `callgate orders add|list|sync`.

`policy publish FILE` validates the document (schema, then its own examples), stores it as the next
version and announces it; gateways pick it up within their poll interval even if the announcement
is lost. `policy check FILE` validates without storing. `orders add` registers an expected
withdrawal exactly as `POST /admin/orders` does.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from shared.config import Settings
from shared.db import Pool, create_pool
from shared.errors import InvalidInput, PolicyError
from shared.keys import RedisKeys
from shared.orders import OrderConflict, list_orders, order_to_data, parse_order, register, resync
from shared.policy.diff import diff_data, diff_lines, diff_versions
from shared.policy.replay import WindowReport, compile_candidate, parse_window, replay_window, window_data
from shared.policy.store import Published, activate, list_versions, load_active, promote, publish, rollback, validate
from shared.redis import create_redis

Action = Callable[[argparse.Namespace, Pool, Redis, RedisKeys], Awaitable[int]]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `policy` and `orders` verbs."""
    policy = sub.add_parser("policy", help="publish, check or show policy documents")
    verbs = policy.add_subparsers(dest="policy_command", required=True)
    publish_cmd = verbs.add_parser("publish", help="validate, store as the next version and announce")
    publish_cmd.add_argument("file", type=Path, help="the policy document (YAML or JSON)")
    publish_cmd.add_argument("--shadow", action="store_true", help="store beside the active version, not instead")
    publish_cmd.add_argument("--by", default=None, help="who publishes (default: the current user)")
    check = verbs.add_parser("check", help="validate a document and run its examples; stores nothing")
    check.add_argument("file", type=Path)
    activate_cmd = verbs.add_parser("activate", help="make a stored version active again (promote a shadow, roll back)")
    activate_cmd.add_argument("version", type=int)
    activate_cmd.add_argument("--by", default=None, help="who activates (default: the current user)")
    _lifecycle_parsers(verbs)
    show = verbs.add_parser("show", help="print the active version (its text as published)")
    show.add_argument("--versions", action="store_true", help="list the latest versions instead")
    orders = sub.add_parser("orders", help="the expected-withdrawal registry")
    order_verbs = orders.add_subparsers(dest="orders_command", required=True)
    add = order_verbs.add_parser("add", help="register a withdrawal the backend initiated")
    for name in ("provider", "ref", "chain", "asset", "destination", "amount"):
        add.add_argument(f"--{name}", required=True)
    add.add_argument("--expires-in", type=float, default=None, help="seconds until the order expires")
    add.add_argument("--extra", action="append", default=[], metavar="KEY=VALUE", help="provider extra (repeat)")
    order_verbs.add_parser("sync", help="rebuild the gateways' Redis copy of the registry from Postgres")
    listing = order_verbs.add_parser("list", help="print the latest registered orders")
    listing.add_argument("--provider", default=None)
    listing.add_argument("--limit", type=int, default=50)


def policy_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run a `policy` sub-verb; 1 when the document is refused."""
    if args.policy_command == "check":
        return _check(args.file)
    actions: dict[str, Action] = {
        "publish": _publish, "activate": _activate, "test": _test, "promote": _promote, "rollback": _rollback,
        "diff": _diff,
    }  # fmt: skip
    action = actions.get(args.policy_command, _show)
    return asyncio.run(_with_services(settings, action, args))


def orders_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run an `orders` sub-verb; 2 on a bad argument, 1 on a conflicting registration."""
    action = {"add": _add_order, "sync": _sync_orders}.get(args.orders_command, _list_orders)
    return asyncio.run(_with_services(settings, action, args))


async def _with_services(settings: Settings, action: Action, args: argparse.Namespace) -> int:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    try:
        return await action(args, pool, redis, RedisKeys(settings.key_prefix))
    finally:
        await redis.aclose()
        await pool.close()


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError("$", f"cannot read {file}: {e}") from None


def _check(file: Path) -> int:
    try:
        _, sha256 = validate(_read(file))
    except PolicyError as e:
        print(f"callgate policy: refused: {e}")
        return 1
    print(f"valid (sha256 {sha256[:12]})")
    return 0


async def _publish(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    try:
        text = _read(args.file)
        result = await publish(pool, redis, keys, text, published_by=args.by or getpass.getuser(), shadow=args.shadow)
    except PolicyError as e:
        print(f"callgate policy: refused: {e}")
        return 1
    return _report(result)


def _report(result: Published) -> int:
    stored = result.policy
    if not result.created:
        print(f"unchanged: version {stored.version} already has this content")
    else:
        note = "" if result.announced else " (not announced: gateways will pick it up at their next poll)"
        print(f"published version {stored.version} ({stored.state}, sha256 {stored.sha256[:12]}){note}")
    return 0


async def _activate(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    return await _lifecycle(activate(pool, redis, keys, args.version, published_by=args.by or getpass.getuser()))


# -- lifecycle: test against recorded traffic, promote a shadow, roll back, compare versions -----

THRESHOLD_EXCEEDED = 3  # `policy test`: more changes than --max-changed/--max-changed-pct allow


def _lifecycle_parsers(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = verbs.add_parser("test", help="decide the recorded requests of a window under a candidate; show changes")
    test.add_argument("file", type=Path)
    test.add_argument("--since", type=_duration, default=86400.0, help="window, e.g. 30m, 24h, 7d (default 24h)")
    test.add_argument("--provider", action="append", default=[], help="only this provider (repeat)")
    test.add_argument("--format", choices=("text", "json"), default="text")
    test.add_argument("--show", type=int, default=50, help="changed decisions listed in full (text)")
    limit = test.add_mutually_exclusive_group()
    limit.add_argument("--max-changed", type=int, default=None, help=f"exit {THRESHOLD_EXCEEDED} above N changes")
    limit.add_argument("--max-changed-pct", type=float, default=None, help="exit non-zero above P %% changed")
    for verb, what in (("promote", "make the shadow version active"), ("rollback", "reactivate the previous one")):
        cmd = verbs.add_parser(verb, help=what)
        cmd.add_argument("--by", default=None, help="who does it (default: the current user)")
    diff = verbs.add_parser("diff", help="rule-level difference between two stored versions")
    diff.add_argument("old", type=int)
    diff.add_argument("new", type=int)
    diff.add_argument("--format", choices=("text", "json"), default="text")


def _duration(text: str) -> float:
    try:
        return parse_window(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 24h, 7d)") from None


async def _test(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    try:
        candidate = compile_candidate(_read(args.file))
    except PolicyError as e:
        print(f"callgate policy: refused: {e}")
        return 1
    since = time.time() - args.since
    keep = 1000 if args.format == "json" else args.show
    report = await replay_window(pool, candidate, since=since, providers=args.provider, keep=keep)
    if args.format == "json":
        print(json.dumps(window_data(report), indent=2))
    else:
        print("\n".join(_test_lines(report, since)))
    return THRESHOLD_EXCEEDED if report.exceeds(args.max_changed, args.max_changed_pct) else 0


def _test_lines(report: WindowReport, since: float) -> list[str]:
    unreadable = f", {report.unreadable} unreadable" if report.unreadable else ""
    lines = [f"{report.requests} recorded decisions replayed, {report.changed} would change"
             f" ({report.changed_pct:.2f} %) since {_time(since)}{unreadable}"]  # fmt: skip
    for title, counts in (("provider", report.by_provider), ("rule", report.by_rule), ("reason", report.by_reason)):
        if counts:
            lines.append(f"by {title}: " + ", ".join(f"{name} {n}" for name, n in counts.most_common()))
    for c in report.changes:
        lines.append(f"  event {c.event_id} {c.provider} {c.request_id}: {c.recorded} -> {c.candidate}")
        lines.append(f"      recorded:  {_reasons(c.recorded_reasons)}")
        lines.append(f"      candidate: {_reasons(c.candidate_reasons)}")
    if report.changed > len(report.changes):
        lines.append(f"  ... and {report.changed - len(report.changes)} more")
    return lines


def _reasons(pairs: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{code}({rule})" if rule else code for code, rule in pairs) or "-"


async def _promote(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    return await _lifecycle(promote(pool, redis, keys, published_by=args.by or getpass.getuser()))


async def _rollback(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    return await _lifecycle(rollback(pool, redis, keys, published_by=args.by or getpass.getuser()))


async def _lifecycle(step: Awaitable[Published]) -> int:
    """Run an activation (`activate`, `promote`, `rollback`) and report it; 1 when refused."""
    try:
        return _report(await step)
    except PolicyError as e:
        print(f"callgate policy: refused: {e}")
        return 1


async def _diff(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    try:
        difference = await diff_versions(pool, args.old, args.new)
    except PolicyError as e:
        print(f"callgate policy: {e}")
        return 1
    print(json.dumps(diff_data(difference), indent=2) if args.format == "json" else "\n".join(diff_lines(difference)))
    return 0


async def _show(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    if args.versions:
        for p in await list_versions(pool):
            print(f"{p.version:>6}  {p.state:<8} {_time(p.published_at)}  {p.published_by:<16} {p.sha256[:12]}")
        return 0
    active = await load_active(pool)
    if active is None:
        print("no policy published: every synchronous decision is REJECT (no_policy)")
        return 1
    print(f"# version {active.version}, published {_time(active.published_at)} by {active.published_by}")
    print(f"# sha256 {active.sha256}")
    print(active.source.rstrip("\n"))
    return 0


async def _add_order(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    extras = dict(item.partition("=")[::2] for item in args.extra)
    data: dict[str, object] = {
        "provider": args.provider, "order_ref": args.ref, "chain": args.chain, "asset": args.asset,
        "destination": args.destination, "amount": args.amount, "extras": extras,
    }  # fmt: skip
    if args.expires_in is not None:
        data["expires_in"] = args.expires_in
    try:
        stored, created = await register(pool, redis, keys, parse_order(data))
    except InvalidInput as e:
        print(f"callgate orders: {e}")
        return 2
    except OrderConflict as e:
        print(f"callgate orders: {e}")
        return 1
    print(("registered " if created else "already registered ") + json.dumps(order_to_data(stored.order)))
    return 0


async def _sync_orders(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    print(f"{await resync(pool, redis, keys)} orders written to Redis")
    return 0


async def _list_orders(args: argparse.Namespace, pool: Pool, redis: Redis, keys: RedisKeys) -> int:
    for stored in await list_orders(pool, provider=args.provider, limit=args.limit):
        o = stored.order
        state = "confirmed" if o.confirmed else "open"
        expires = "never" if o.expires_at is None else _time(o.expires_at)
        print(f"{o.provider:<16} {o.order_ref:<24} {o.chain:<6} {o.asset:<8} {o.amount:>20} {o.destination}"
              f"  {state}  expires {expires}")  # fmt: skip
    return 0


def _time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
