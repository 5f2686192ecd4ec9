"""The policy store: versions in Postgres, announcements on Redis.

`publish` validates a document (schema, then its own examples), stores it as the next version and
announces the version on the policy channel; gateways (`shared.policy.holder`) load it from here.
Postgres is the truth; the announcement is only a hint, and a lost one is caught by the holders'
periodic version check.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.db import Connection, Pool
from shared.errors import PolicyError
from shared.keys import RedisKeys
from shared.policy.document import canonical_json, load_document, parse_document
from shared.policy.snapshot import PolicySnapshot, check_examples, compile_snapshot

logger = logging.getLogger(__name__)

_INSERT = (
    "INSERT INTO policies (document, source, sha256, published_by, state) VALUES ($1, $2, $3, $4, $5)"
    " RETURNING version, document, source, sha256, published_at, published_by, state"
)
_SELECT_ACTIVE = (
    "SELECT version, document, source, sha256, published_at, published_by, state FROM policies WHERE state = 'active'"
)
# For the holder: the document without its address lists as JSON text, and each list as one
# newline-joined text built by Postgres. Decoding 10 MB of JSON is one long C call that holds
# the GIL (and with it every request of the process); splitting a text is a short one, and the
# rest of the compilation is Python code that the event loop interleaves with.
_SELECT_ACTIVE_TEXT = (
    "SELECT version, (document - 'lists')::text AS document, source, sha256, published_at, published_by, state"
    " FROM policies WHERE state = 'active'"
)
_SELECT_VERSION_TEXT = _SELECT_ACTIVE_TEXT.replace("WHERE state = 'active'", "WHERE version = $1")
_SELECT_LISTS_TEXT = """
SELECT l.key AS name, array_to_string(ARRAY(SELECT jsonb_array_elements_text(l.value)), E'\n') AS entries
FROM policies AS p, jsonb_each(p.document->'lists') AS l
WHERE p.version = $1
"""
_SELECT_VERSION = (
    "SELECT version, document, source, sha256, published_at, published_by, state FROM policies WHERE version = $1"
)
_SELECT_LATEST = (
    "SELECT version, document, source, sha256, published_at, published_by, state"
    " FROM policies ORDER BY version DESC LIMIT $1"
)


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One row of the policies table."""

    version: int
    document: object  # validated data, amounts as strings (or its JSON text, see load_active)
    source: str
    sha256: str
    published_at: float  # unix seconds
    published_by: str
    state: str  # active | shadow | retired
    lists_text: tuple[tuple[str, str], ...] = ()  # with a text document: name -> newline-joined entries


@dataclass(frozen=True, slots=True)
class Published:
    policy: StoredPolicy
    created: bool  # False: the active document already had this content; nothing changed
    announced: bool  # False: Redis did not take the announcement (holders will poll it)


def validate(text: str) -> tuple[object, str]:
    """Check a document the way publishing does; returns (stored data, sha256) or raises PolicyError."""
    data = load_document(text)
    document = parse_document(data)
    check_examples(document, compile_snapshot(document, version=0, published_at=0.0, sha256=""))
    canonical = canonical_json(data)
    # The stored form keeps amounts as strings: jsonb would turn decimals into binary floats.
    return json.loads(canonical), hashlib.sha256(canonical.encode()).hexdigest()


def compile_stored(stored: StoredPolicy) -> PolicySnapshot:
    """The snapshot of a stored version (CPU-bound: run it off the event loop)."""
    data = stored.document
    if isinstance(data, str):
        data = orjson.loads(data)
        if stored.lists_text and isinstance(data, dict):
            # Entries never contain a newline: the document schema refuses control characters.
            data["lists"] = {name: entries.split("\n") if entries else [] for name, entries in stored.lists_text}
    return compile_snapshot(
        parse_document(data),
        version=stored.version,
        published_at=stored.published_at,
        sha256=stored.sha256,
    )


async def publish(
    pool: Pool, redis: Redis, keys: RedisKeys, text: str, *, published_by: str, shadow: bool = False
) -> Published:
    """Validate `text`, store it as the next version (active, or shadow beside the active one) and
    announce it. Raises PolicyError for an invalid document; nothing is stored then."""
    data, sha256 = validate(text)
    return await _store(pool, redis, keys, (data, text, sha256), published_by=published_by, shadow=shadow)


async def activate(pool: Pool, redis: Redis, keys: RedisKeys, version: int, *, published_by: str) -> Published:
    """Make the document of `version` (a shadow to promote, or an old one to roll back to) active
    again, as a new version: versions only grow, so every holder sees the change. Raises
    PolicyError when the version does not exist or no longer passes its examples."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_SELECT_VERSION, version)
    if row is None:
        raise PolicyError("version", f"no policy version {version}")
    old = _stored(row)
    data, sha256 = validate(old.source)
    return await _store(pool, redis, keys, (data, old.source, sha256), published_by=published_by, shadow=False)


async def promote(pool: Pool, redis: Redis, keys: RedisKeys, *, published_by: str) -> Published:
    """Make the shadow in effect active (`policy promote`); PolicyError when there is none."""
    _, shadow = await versions_in_effect(pool)
    if shadow is None:
        raise PolicyError("version", "no shadow version to promote (publish one with --shadow)")
    return await activate(pool, redis, keys, shadow, published_by=published_by)


async def rollback(pool: Pool, redis: Redis, keys: RedisKeys, *, published_by: str) -> Published:
    """Make the previously active version active again (`policy rollback`); it also ends a shadow."""
    previous = await previous_active(pool)
    if previous is None:
        raise PolicyError("version", "no earlier active version to roll back to")
    return await activate(pool, redis, keys, previous, published_by=published_by)


async def _store(
    pool: Pool, redis: Redis, keys: RedisKeys, content: tuple[object, str, str], *, published_by: str, shadow: bool
) -> Published:
    data, source, sha256 = content
    async with pool.acquire() as conn, conn.transaction():
        # One publisher at a time: the version order must be the order of activation.
        await conn.execute("LOCK TABLE policies IN SHARE ROW EXCLUSIVE MODE")
        active = await _active(conn)
        if active is not None and active.sha256 == sha256 and not shadow:
            return Published(active, created=False, announced=False)
        if not shadow:
            await conn.execute("UPDATE policies SET state = 'retired' WHERE state = 'active'")
        state = "shadow" if shadow else "active"
        row = await conn.fetchrow(_INSERT, data, source, sha256, published_by, state)
    stored = _stored(row)
    # A shadow is announced too: holders evaluate it beside the active version.
    announced = await announce(redis, keys, stored.version)
    logger.info("policy version %d published by %s (%s)", stored.version, published_by, stored.state)
    return Published(stored, created=True, announced=announced)


async def announce(redis: Redis, keys: RedisKeys, version: int) -> bool:
    """Tell every holder that `version` is active; False when Redis could not be reached."""
    try:
        await redis.publish(keys.policy_channel, str(version))
    except (RedisError, OSError) as e:
        logger.warning("policy version %d stored but not announced (%s); holders will poll", version, e)
        return False
    return True


async def load_active(pool: Pool, *, document_as_text: bool = False) -> StoredPolicy | None:
    """The active version, or None when nothing was ever published; `document_as_text` leaves
    the document undecoded, its lists apart (for `compile_stored` in a thread)."""
    async with pool.acquire() as conn:
        if not document_as_text:
            return await _active(conn)
        return await _load_text(conn, _SELECT_ACTIVE_TEXT)


async def _load_text(conn: Connection, query: str, *args: object) -> StoredPolicy | None:
    """The version `query` selects, its document undecoded and its lists apart, read consistently."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(query, *args)
        if row is None:
            return None
        lists = await conn.fetch(_SELECT_LISTS_TEXT, row["version"])
    stored = _stored(row)
    return dataclasses.replace(stored, lists_text=tuple((r["name"], r["entries"]) for r in lists))


async def active_version(pool: Pool) -> int | None:
    """Just the active version number (`callgate dev`; the holders check `versions_in_effect`)."""
    async with pool.acquire() as conn:
        version = await conn.fetchval("SELECT version FROM policies WHERE state = 'active'")
    return None if version is None else int(version)


# The shadow in effect: the newest shadow stored after the active version (promoting it, rolling
# back or publishing a new active version ends it, since each stores a newer active version).
_IN_EFFECT = """
SELECT (SELECT version FROM policies WHERE state = 'active') AS active,
       (SELECT max(version) FROM policies WHERE state = 'shadow'
         AND version > coalesce((SELECT version FROM policies WHERE state = 'active'), 0)) AS shadow
"""
_PREVIOUS_ACTIVE = (
    "SELECT max(version) FROM policies WHERE state = 'retired'"
    " AND version < coalesce((SELECT version FROM policies WHERE state = 'active'), 2147483647)"
)


async def versions_in_effect(pool: Pool) -> tuple[int | None, int | None]:
    """(active version, shadow version in effect): the holders' periodic check."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(_IN_EFFECT)
    assert row is not None  # a SELECT without FROM returns one row
    return row["active"], row["shadow"]


async def previous_active(pool: Pool) -> int | None:
    """The version that was active before the active one (what `policy rollback` reactivates)."""
    async with pool.acquire() as conn:
        version = await conn.fetchval(_PREVIOUS_ACTIVE)
    return None if version is None else int(version)


async def load_version(pool: Pool, version: int, *, document_as_text: bool = False) -> StoredPolicy | None:
    """One stored version, or None; `document_as_text` as for `load_active`."""
    async with pool.acquire() as conn:
        if not document_as_text:
            row = await conn.fetchrow(_SELECT_VERSION, version)
            return None if row is None else _stored(row)
        return await _load_text(conn, _SELECT_VERSION_TEXT, version)


async def list_versions(pool: Pool, *, limit: int = 20) -> list[StoredPolicy]:
    """The latest versions, newest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_SELECT_LATEST, limit)
    return [_stored(row) for row in rows]


async def _active(conn: Connection) -> StoredPolicy | None:
    row = await conn.fetchrow(_SELECT_ACTIVE)
    return None if row is None else _stored(row)


def _stored(row: asyncpg.Record | None) -> StoredPolicy:
    assert row is not None  # RETURNING / WHERE found it: a programmer error otherwise
    published_at = row["published_at"]
    assert isinstance(published_at, dt.datetime)
    return StoredPolicy(
        version=int(row["version"]),
        document=row["document"],
        source=str(row["source"]),
        sha256=str(row["sha256"]),
        published_at=published_at.timestamp(),
        published_by=str(row["published_by"]),
        state=str(row["state"]),
    )
