"""Cobo UCW state: the wallets registry and the reconciled TSS request rows (Postgres + Redis).

Postgres holds the truth of record (`ucw_wallets`, `tss_requests`). Redis holds two replicas the
gateway reads instead of Postgres, so that a callback costs no Postgres query:

- `<prefix>:ucw:wallets`, a hash wallet_uuid -> vault_id (the 404 check), rebuilt from Postgres by
  `sync_wallets` (every worker start, `callgate wallets sync`) in case Redis lost it. Every change
  bumps `<prefix>:ucw:wallets:version` and is announced on `<prefix>:ucw:wallets:changed`, so that
  each gateway's in-memory copy (`cobo_ucw_replica.WalletReplica`) follows it;
- `<prefix>:ucw:tss:<wallet>:<id>`, the row as currently known (WaaS status and snapshot), written
  by the worker after every Postgres write, read by the gateway to fill `result`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from shared.db import Connection
from shared.keys import RedisKeys
from shared.providers.cobo_ucw import CallbackResult

__all__ = [
    "STATE_TTL_S",
    "TssRow",
    "add_wallet",
    "count_open",
    "decode_state",
    "load_row",
    "load_wallets",
    "publish_state",
    "read_state",
    "record_report",
    "record_waas",
    "rows_for_request",
    "state_key",
    "sync_wallets",
    "vault_of",
    "wallets_channel",
    "wallets_version",
]

# The replica only has to outlive the callbacks about a request (minutes to days).
STATE_TTL_S = 30 * 24 * 3600


def _wallets_key(keys: RedisKeys) -> str:
    return keys.namespace("ucw:wallets")


def _wallets_version_key(keys: RedisKeys) -> str:
    return keys.namespace("ucw:wallets:version")


def wallets_channel(keys: RedisKeys) -> str:
    """The channel announcing a change of the wallet registry (the message is the new version)."""
    return keys.namespace("ucw:wallets:changed")


def state_key(keys: RedisKeys, wallet_uuid: str, tss_request_id: str) -> str:
    """The Redis key of a row's replica (what the gateway reads to fill `result`)."""
    return keys.namespace(f"ucw:tss:{wallet_uuid}:{tss_request_id}")


@dataclass(frozen=True, slots=True)
class TssRow:
    """One `tss_requests` row."""

    wallet_uuid: str
    tss_request_id: str
    vault_id: str
    reported_status: int | None
    first_reported_at: dt.datetime
    waas_status: str | None
    waas_terminal: bool
    waas_snapshot: dict[str, Any] | None
    waas_synced_at: dt.datetime | None
    disagreement: bool
    attempts: int
    last_error: str | None
    next_check_at: dt.datetime | None

    def result(self) -> CallbackResult:
        """The `result` of a callback answer: the WaaS view, empty until WaaS was first read."""
        snapshot = orjson.dumps(self.waas_snapshot).decode() if self.waas_snapshot is not None else ""
        return CallbackResult(self.tss_request_id, self.waas_status or "", snapshot)


# -- wallets ---------------------------------------------------------------------------------


async def add_wallet(conn: Connection, redis: Redis, keys: RedisKeys, wallet_uuid: str, vault_id: str) -> None:
    """Register (or re-point) a wallet: Postgres first, so the Redis replica never knows more."""
    await conn.execute(
        "INSERT INTO ucw_wallets (wallet_uuid, vault_id) VALUES ($1, $2)"
        " ON CONFLICT (wallet_uuid) DO UPDATE SET vault_id = EXCLUDED.vault_id, updated_at = now()",
        wallet_uuid,
        vault_id,
    )
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(_wallets_key(keys), wallet_uuid, vault_id)
        pipe.incr(_wallets_version_key(keys))
        _, version = await pipe.execute()
    await redis.publish(wallets_channel(keys), str(version))


async def sync_wallets(conn: Connection, redis: Redis, keys: RedisKeys) -> int:
    """Rebuild the Redis wallet replica from Postgres (atomically); returns the wallet count."""
    rows = await conn.fetch("SELECT wallet_uuid::text AS w, vault_id FROM ucw_wallets")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(_wallets_key(keys))
        if rows:
            pipe.hset(_wallets_key(keys), mapping={r["w"]: r["vault_id"] for r in rows})
        pipe.incr(_wallets_version_key(keys))
        *_, version = await pipe.execute()
    await redis.publish(wallets_channel(keys), str(version))
    return len(rows)


async def load_wallets(redis: Redis, keys: RedisKeys) -> tuple[int, dict[str, str]]:
    """The registry's version and its wallet -> vault map, read together (one MULTI)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(_wallets_version_key(keys))
        pipe.hgetall(_wallets_key(keys))
        version, mapping = await pipe.execute()
    return int(version or 0), {_text(w): _text(v) for w, v in mapping.items()}


async def wallets_version(redis: Redis, keys: RedisKeys) -> int:
    """The registry's change counter (0 when Redis has none: never written, or lost)."""
    return int(await cast(Awaitable[bytes | None], redis.get(_wallets_version_key(keys))) or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def vault_of(redis: Redis, keys: RedisKeys, wallet_uuid: str) -> str | None:
    """The vault of a registered wallet from the Redis replica; None for an unknown wallet."""
    # redis-py types hash commands as "Awaitable | value" for its sync and async clients alike.
    value = await cast(Awaitable[bytes | str | None], redis.hget(_wallets_key(keys), wallet_uuid))
    return _text(value) if value is not None else None


# -- tss_requests ----------------------------------------------------------------------------


def _row(r: Any) -> TssRow:
    snapshot = r["waas_snapshot"]
    return TssRow(
        wallet_uuid=str(r["wallet_uuid"]),
        tss_request_id=r["tss_request_id"],
        vault_id=r["vault_id"],
        reported_status=r["reported_status"],
        first_reported_at=r["first_reported_at"],
        waas_status=r["waas_status"],
        waas_terminal=r["waas_terminal"],
        waas_snapshot=snapshot if isinstance(snapshot, dict) else None,
        waas_synced_at=r["waas_synced_at"],
        disagreement=r["disagreement"],
        attempts=r["attempts"],
        last_error=r["last_error"],
        next_check_at=r["next_check_at"],
    )


async def record_report(
    conn: Connection, *, wallet_uuid: str, tss_request_id: str, vault_id: str, status: int, at: dt.datetime
) -> TssRow:
    """Upsert a UCW report. Reports can arrive out of order: the latest one by time wins."""
    record = await conn.fetchrow(
        """
        INSERT INTO tss_requests (wallet_uuid, tss_request_id, vault_id, reported_status,
                                  first_reported_at, last_reported_at)
        VALUES ($1, $2, $3, $4, $5, $5)
        ON CONFLICT (wallet_uuid, tss_request_id) DO UPDATE SET
            reported_status = CASE WHEN EXCLUDED.last_reported_at >= tss_requests.last_reported_at
                                   THEN EXCLUDED.reported_status ELSE tss_requests.reported_status END,
            last_reported_at = GREATEST(tss_requests.last_reported_at, EXCLUDED.last_reported_at),
            first_reported_at = LEAST(tss_requests.first_reported_at, EXCLUDED.first_reported_at),
            updated_at = now()
        RETURNING *
        """,
        wallet_uuid,
        tss_request_id,
        vault_id,
        status,
        at,
    )
    return _row(record)


async def record_waas(
    conn: Connection,
    row: TssRow,
    *,
    waas_status: str | None,
    terminal: bool,
    snapshot: dict[str, Any] | None,
    disagreement: bool,
    error: str | None,
    next_check_at: dt.datetime | None,
) -> TssRow:
    """Store the outcome of one WaaS read: a state (error None) or a failure (state columns kept)."""
    record = await conn.fetchrow(
        """
        UPDATE tss_requests SET
            waas_status = COALESCE($3, waas_status),
            waas_terminal = waas_terminal OR $4,
            waas_snapshot = COALESCE($5::jsonb, waas_snapshot),
            waas_synced_at = CASE WHEN $3::text IS NULL THEN waas_synced_at ELSE now() END,
            disagreement = $6,
            attempts = attempts + 1,
            last_error = $7,
            next_check_at = $8,
            updated_at = now()
        WHERE wallet_uuid = $1 AND tss_request_id = $2
        RETURNING *
        """,
        row.wallet_uuid,
        row.tss_request_id,
        waas_status,
        terminal,
        snapshot,
        disagreement,
        error,
        next_check_at,
    )
    return _row(record)


async def load_row(conn: Connection, wallet_uuid: str, tss_request_id: str) -> TssRow | None:
    record = await conn.fetchrow(
        "SELECT * FROM tss_requests WHERE wallet_uuid = $1 AND tss_request_id = $2",
        wallet_uuid,
        tss_request_id,
    )
    return _row(record) if record is not None else None


async def rows_for_request(conn: Connection, tss_request_id: str) -> list[TssRow]:
    """Every wallet's row for a TSS request id (what a WaaS webhook names)."""
    records = await conn.fetch("SELECT * FROM tss_requests WHERE tss_request_id = $1", tss_request_id)
    return [_row(r) for r in records]


async def count_open(conn: Connection) -> int:
    """TSS requests still being re-checked (the pending-reconciliations gauge).

    A request past its horizon without a terminal WaaS state is no longer pending: it was judged
    (and flagged if the report claimed an outcome) and needs a human, not another read.
    """
    query = "SELECT count(*) FROM tss_requests WHERE NOT waas_terminal AND next_check_at IS NOT NULL"
    return int(await conn.fetchval(query) or 0)


# -- the gateway's replica of a row ----------------------------------------------------------


async def publish_state(redis: Redis, keys: RedisKeys, row: TssRow) -> None:
    """Write the row as the gateway should answer it (after every Postgres write of the row)."""
    synced = row.waas_synced_at.timestamp() if row.waas_synced_at else None
    value = orjson.dumps({"result": _result_json(row), "synced_at": synced})
    await redis.set(state_key(keys, row.wallet_uuid, row.tss_request_id), value, ex=STATE_TTL_S)


def _result_json(row: TssRow) -> dict[str, str]:
    result = row.result()
    return {
        "tss_request_id": result.tss_request_id,
        "status": result.status,
        "waas_status_snapshot": result.waas_status_snapshot,
    }


async def read_state(
    redis: Redis, keys: RedisKeys, wallet_uuid: str, tss_request_id: str
) -> tuple[CallbackResult, float | None] | None:
    """The replica of a row and when WaaS was last read for it (epoch s); None if never written."""
    return decode_state(await redis.get(state_key(keys, wallet_uuid, tss_request_id)))


def decode_state(raw: bytes | None) -> tuple[CallbackResult, float | None] | None:
    """A row replica as `publish_state` wrote it (None when absent or unreadable)."""
    if raw is None:
        return None
    # Written by our own workers, but it crossed Redis: a malformed value is treated as absent.
    try:
        value = orjson.loads(raw)
        result = CallbackResult(**value["result"])
        synced = value["synced_at"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return result, float(synced) if isinstance(synced, int | float) else None
