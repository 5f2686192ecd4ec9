"""Subscribers: where notifications go, signed with which secrets, for which event types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

from shared.db import Connection
from shared.errors import InvalidInput
from shared.notify.signing import new_secret, secret_key


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    name: str
    url: str
    event_types: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    created_at: dt.datetime
    previous_secret_expires_at: dt.datetime | None


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host; InvalidInput otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url", "expected an absolute http:// or https:// URL")
    return url


def check_event_types(types: Sequence[str]) -> tuple[str, ...]:
    """Exact types (`wyre.transaction.confirmed`), prefixes (`wyre.*`) or `*`."""
    for t in types:
        if not t or " " in t or ("*" in t and t != "*" and not (t.endswith(".*") and t.count("*") == 1)):
            raise InvalidInput("event_types", f"{t!r}: expected a type, `<prefix>.*` or `*`")
    return tuple(types)


def _subscriber(row: asyncpg.Record) -> Subscriber:
    return Subscriber(
        id=row["id"],
        name=row["name"],
        url=row["url"],
        event_types=tuple(row["event_types"]),
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
    )


async def add(
    conn: Connection, name: str, url: str, *, event_types: Sequence[str] = (), secret: str | None = None
) -> tuple[Subscriber, str]:
    """Create a subscriber; returns it and its signing secret (generated unless given)."""
    secret = secret or new_secret()
    secret_key(secret)
    try:
        row = await conn.fetchrow(
            "INSERT INTO subscribers (name, url, secret, event_types) VALUES ($1, $2, $3, $4) RETURNING *",
            name,
            check_url(url),
            secret,
            list(check_event_types(event_types)),
        )
    except asyncpg.UniqueViolationError:
        raise InvalidInput("name", f"a subscriber named {name!r} exists") from None
    assert row is not None
    return _subscriber(row), secret


async def list_all(conn: Connection) -> list[Subscriber]:
    """Every subscriber, oldest first."""
    return [_subscriber(r) for r in await conn.fetch("SELECT * FROM subscribers ORDER BY id")]


async def find(conn: Connection, name: str) -> Subscriber | None:
    row = await conn.fetchrow("SELECT * FROM subscribers WHERE name = $1", name)
    return None if row is None else _subscriber(row)


async def set_enabled(conn: Connection, name: str, enabled: bool, *, reason: str | None = None) -> bool:
    """Enable or disable by name; False when there is no such subscriber."""
    result = await conn.execute(
        "UPDATE subscribers SET enabled = $2, disabled_reason = $3, updated_at = now() WHERE name = $1",
        name,
        enabled,
        None if enabled else reason,
    )
    return result != "UPDATE 0"


async def disable_by_id(conn: Connection, subscriber_id: int, reason: str) -> None:
    """Disable a subscriber the delivery learned is gone (410)."""
    await conn.execute(
        "UPDATE subscribers SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1",
        subscriber_id,
        reason,
    )


async def rotate_secret(conn: Connection, name: str, *, overlap: dt.timedelta, secret: str | None = None) -> str:
    """A new current secret; the old one keeps signing (a second signature) for `overlap`."""
    secret = secret or new_secret()
    secret_key(secret)
    result = await conn.execute(
        "UPDATE subscribers SET previous_secret = secret, previous_secret_expires_at = now() + $3::interval,"
        " secret = $2, updated_at = now() WHERE name = $1",
        name,
        secret,
        overlap,
    )
    if result == "UPDATE 0":
        raise InvalidInput("name", f"no subscriber named {name!r}")
    return secret
