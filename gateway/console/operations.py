"""Read queries of the console's other pages: overview, dead letters, TSS requests, policy versions."""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass
from typing import Any

from shared.db import Connection
from shared.jobs import DELIVER_NOTIFICATION

# Events of the last day per provider and outcome (the decision's action when there is one).
_TRAFFIC = """
SELECT provider, coalesce(lower(decision->>'action'), status) AS outcome,
       count(*) FILTER (WHERE received_at >= now() - interval '1 hour') AS hour, count(*) AS day
FROM events WHERE received_at >= now() - interval '1 day'
GROUP BY 1, 2 ORDER BY 1, 2
"""
_OPEN_LETTERS = "SELECT job, count(*) AS n FROM dead_letters WHERE replayed_at IS NULL GROUP BY job ORDER BY job"
_POLICIES = (
    "SELECT version, state, published_at, published_by FROM policies"
    " WHERE state IN ('active', 'shadow') ORDER BY version DESC LIMIT 5"
)
_PENDING = "SELECT count(*) FROM notifications WHERE status = 'pending'"


@dataclass(frozen=True, slots=True)
class Traffic:
    provider: str
    hour: int
    day: int
    outcomes: list[tuple[str, int, int]]  # (outcome, last hour, last day)


@dataclass(frozen=True, slots=True)
class Overview:
    traffic: list[Traffic]
    dead_letters: list[tuple[str, int]]
    policies: list[dict[str, Any]]
    pending_notifications: int


async def overview(conn: Connection) -> Overview:
    """Traffic and outcomes per provider (last hour, last day), open dead letters, live policies."""
    by_provider: dict[str, list[tuple[str, int, int]]] = {}
    for r in await conn.fetch(_TRAFFIC):
        by_provider.setdefault(r["provider"], []).append((r["outcome"], r["hour"], r["day"]))
    traffic = [
        Traffic(p, sum(o[1] for o in outs), sum(o[2] for o in outs), outs) for p, outs in sorted(by_provider.items())
    ]
    return Overview(
        traffic=traffic,
        dead_letters=await open_letter_counts(conn),
        policies=[dict(r) for r in await conn.fetch(_POLICIES)],
        pending_notifications=int(await conn.fetchval(_PENDING)),
    )


async def open_letter_counts(conn: Connection) -> list[tuple[str, int]]:
    """Open dead letters per job."""
    return [(r["job"], r["n"]) for r in await conn.fetch(_OPEN_LETTERS)]


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    id: int
    job: str
    ref: str
    reason: str
    created_at: dt.datetime
    subscriber: str | None  # notifications only
    subscriber_enabled: bool | None
    event_id: int | None
    event_type: str | None


_LETTERS = """
SELECT d.id, d.job, d.ref, d.reason, d.created_at, s.name AS subscriber, s.enabled AS subscriber_enabled,
       n.event_id, n.event_type
FROM dead_letters d
LEFT JOIN notifications n ON d.job = $1 AND n.id = d.ref
LEFT JOIN subscribers s ON s.id = n.subscriber_id
WHERE d.replayed_at IS NULL AND ($2::text IS NULL OR s.name = $2) AND ($3::bigint IS NULL OR d.id < $3)
ORDER BY d.created_at DESC, d.id DESC
LIMIT $4
"""


async def open_dead_letters(
    conn: Connection, *, subscriber: str | None = None, before: int | None = None, limit: int = 50
) -> tuple[list[DeadLetterRow], int | None]:
    """Open dead letters, newest first, and the cursor of the next page (None: last page)."""
    rows = [
        DeadLetterRow(**dict(r))
        for r in await conn.fetch(_LETTERS, DELIVER_NOTIFICATION, subscriber, before, limit + 1)
    ]
    more = len(rows) > limit
    return rows[:limit], (rows[limit - 1].id if more else None)


_TSS = """
SELECT wallet_uuid::text AS wallet_uuid, tss_request_id, vault_id, reported_status, waas_status, waas_terminal,
       disagreement, attempts, last_error, next_check_at, waas_synced_at, updated_at
FROM tss_requests
WHERE ($1::bool IS NOT TRUE OR disagreement) AND ($2::bool IS NOT TRUE OR NOT waas_terminal)
  AND ($3::timestamptz IS NULL OR (updated_at, tss_request_id) < ($3, $4::text))
ORDER BY updated_at DESC, tss_request_id DESC
LIMIT $5
"""


async def tss_requests(
    conn: Connection,
    *,
    disagreeing: bool = False,
    open_only: bool = False,
    before: tuple[dt.datetime, str] | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], tuple[dt.datetime, str] | None]:
    """TSS requests, latest change first: what the UCW client reported beside what WaaS says."""
    at, tss_id = before if before else (None, None)
    rows = [dict(r) for r in await conn.fetch(_TSS, disagreeing, open_only, at, tss_id, limit + 1)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, ((rows[-1]["updated_at"], rows[-1]["tss_request_id"]) if more else None)


_VERSIONS = "SELECT version, state, published_at, published_by, sha256 FROM policies ORDER BY version DESC LIMIT $1"
_SOURCES = "SELECT version, source FROM policies WHERE version = ANY ($1)"


async def policy_versions(conn: Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    """The latest policy versions (without their documents), newest first."""
    return [dict(r) for r in await conn.fetch(_VERSIONS, limit)]


async def policy_diff(conn: Connection, old: int, new: int) -> list[str] | None:
    """A unified diff of two versions' published text; None when either does not exist."""
    sources = {r["version"]: r["source"] for r in await conn.fetch(_SOURCES, [old, new])}
    if old not in sources or new not in sources:
        return None
    return list(
        difflib.unified_diff(
            sources[old].splitlines(), sources[new].splitlines(), f"version {old}", f"version {new}", lineterm=""
        )
    )
