"""`callgate wallets add WALLET_UUID VAULT_ID | sync | list`: the UCW wallet -> Cobo vault registry.

Postgres is the record; the Redis hash the gateways replicate in memory (unknown wallet -> 404) is
updated on `add` and rebuilt from Postgres by `sync` (workers also rebuild it when they start).
Both announce the change, so every gateway process follows it within about a second; a gateway
asks Redis about a wallet it does not know yet, so `add` returning means the wallet is accepted.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from shared.config import Settings
from shared.errors import InvalidInput
from shared.keys import RedisKeys
from shared.providers.cobo_ucw import parse_wallet_uuid
from shared.providers.cobo_ucw_store import add_wallet, sync_wallets
from shared.redis import create_redis


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `wallets` verb and its sub-verbs."""
    wallets = sub.add_parser("wallets", help="UCW wallet -> Cobo WaaS vault registry")
    verbs = wallets.add_subparsers(dest="wallets_command", required=True)
    add = verbs.add_parser("add", help="register (or re-point) a UCW wallet")
    add.add_argument("wallet_uuid", help="the UCW wallet uuid (the {wallet_uuid} of the callback route)")
    add.add_argument("vault_id", help="the Cobo WaaS MPC vault id its TSS requests belong to")
    verbs.add_parser("sync", help="rebuild the gateway's Redis replica from Postgres")
    verbs.add_parser("list", help="print the registered wallets")


def command(args: argparse.Namespace, settings: Settings) -> int:
    """Run a `wallets` sub-verb; 0 on success, 2 on a bad argument."""
    try:
        return asyncio.run(_run(args, settings))
    except InvalidInput as e:
        print(f"callgate wallets: {e}")
        return 2


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    keys = RedisKeys(settings.key_prefix)
    try:
        if args.wallets_command == "add":
            wallet, vault = parse_wallet_uuid(args.wallet_uuid), args.vault_id.strip()
            if not vault or len(vault) > 128:
                raise InvalidInput("vault_id", "must be 1-128 characters")
            await add_wallet(conn, redis, keys, wallet, vault)
            print(f"wallet {wallet} -> vault {vault}")
        elif args.wallets_command == "sync":
            print(f"{await sync_wallets(conn, redis, keys)} wallets in the gateway replica")
        else:
            for row in await conn.fetch("SELECT wallet_uuid, vault_id FROM ucw_wallets ORDER BY created_at"):
                print(f"{row['wallet_uuid']} {row['vault_id']}")
    finally:
        await conn.close()
        await redis.aclose()
    return 0
