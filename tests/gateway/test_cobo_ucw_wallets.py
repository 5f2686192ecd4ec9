"""`callgate wallets add|sync|list` against real Postgres and Redis."""

from __future__ import annotations

import argparse
from typing import cast

import pytest
import redis as redis_sync

from callgate.cli import _parser
from callgate.wallets import command
from shared.config import Settings
from shared.keys import RedisKeys

WALLET = "9B2F7A4E-3C1D-4E5F-8A6B-7C8D9E0F1A2B"


def _vault(client: redis_sync.Redis, key: str) -> bytes | None:
    # redis-py types its sync and async results as one union; this client is the sync one.
    return cast(bytes | None, client.hget(key, WALLET.lower()))


def _run(settings: Settings, *argv: str) -> int:
    args: argparse.Namespace = _parser().parse_args(["wallets", *argv])
    return command(args, settings)


def test_add_registers_in_postgres_and_the_gateway_replica(
    settings: Settings, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = redis_sync.Redis.from_url(redis_url)
    client.flushdb()
    key = RedisKeys(settings.key_prefix).namespace("ucw:wallets")
    assert _run(settings, "add", WALLET, "vault-1") == 0
    assert _vault(client, key) == b"vault-1"
    assert _run(settings, "add", WALLET, "vault-2") == 0  # re-pointing a wallet
    client.delete(key)
    assert _run(settings, "sync") == 0
    assert _vault(client, key) == b"vault-2"
    assert _run(settings, "list") == 0
    assert f"{WALLET.lower()} vault-2" in capsys.readouterr().out
    assert _run(settings, "add", "not-a-uuid", "vault-1") == 2
    client.close()
