"""Event queries of the console: a filtered list paged by keyset, and one event with what followed it.

The list is ordered by (received_at, id), newest first; a page ends with a cursor naming its last
row, and the next page is "older than that row" (an index range scan, however deep the page).
Every filter has an index ending in (received_at, id) (shared/migrations/0009_console_indexes.sql).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared.db import Connection
from shared.jobs import DELIVER_NOTIFICATION, scrub_headers

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)
FILTER_COLUMNS = ("provider", "kind", "status")


@dataclass(frozen=True, slots=True)
class EventFilter:
    """What the events page asks for (None: not a criterion)."""

    provider: str | None = None
    kind: str | None = None
    status: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    search: str | None = None  # any id: idempotency key, request id, txid, tss_request_id, ...
    before: tuple[dt.datetime, int] | None = None  # keyset cursor: rows older than this one


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    provider: str
    kind: str
    status: str
    request_id: str
    idempotency_key: str
    received_at: dt.datetime
    action: str | None
    policy_version: int | None


@dataclass(frozen=True, slots=True)
class EventPage:
    rows: list[EventRow]
    next_cursor: str | None  # None: this is the last page


def encode_cursor(received_at: dt.datetime, event_id: int) -> str:
    return f"{(received_at - EPOCH) // _MICRO}_{event_id}"


def decode_cursor(text: str) -> tuple[dt.datetime, int] | None:
    micros, _, event_id = text.partition("_")
    if not micros.lstrip("-").isdigit() or not event_id.isdigit() or len(text) > 40:
        return None
    return EPOCH + int(micros) * _MICRO, int(event_id)


_LIST_COLUMNS = (
    "id, provider, kind, status, request_id, idempotency_key, received_at,"
    " decision->>'action' AS action, policy_version"
)


def _where(f: EventFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("$?", f"${len(args)}"))

    if f.search is not None:  # $1: the id the `hits` CTE looks up
        add("id IN (SELECT id FROM hits)", f.search)
    for column in FILTER_COLUMNS:
        value = getattr(f, column)
        if value is not None:
            add(f"{column} = $?", value)
    if f.since is not None:
        add("received_at >= $?", f.since)
    if f.until is not None:
        add("received_at < $?", f.until)
    if f.before is not None:
        args.extend(f.before)
        clauses.append(f"(received_at, id) < (${len(args) - 1}, ${len(args)})")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


# The id search runs first, on its GIN index, behind a fence: the planner cannot tell how rare an
# id is (it guesses 0.5% of rows) and would otherwise walk the time index, evaluating the id
# function on every row until a page is full: a full scan for an id that occurs once.
_HITS = (
    "WITH hits AS MATERIALIZED (SELECT id FROM events"
    " WHERE console_event_ids(idempotency_key, request_id, payload) @> ARRAY[$1::text]) "
)


def list_query(f: EventFilter, *, limit: int) -> tuple[str, list[Any]]:
    """The SQL and arguments of one page (one row more than `limit`: is there a next page?)."""
    where, args = _where(f)
    # Only fixed column names and placeholders are spliced in; every value is a parameter.
    select = f"SELECT {_LIST_COLUMNS} FROM events{where} ORDER BY received_at DESC, id DESC LIMIT {int(limit) + 1}"  # noqa: S608
    return (_HITS if f.search is not None else "") + select, args


async def list_events(conn: Connection, f: EventFilter, *, limit: int = 50) -> EventPage:
    """One page of events matching `f`, newest first."""
    sql, args = list_query(f, limit=limit)
    rows = [EventRow(**dict(r)) for r in await conn.fetch(sql, *args)]
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1].received_at, rows[-1].id) if more else None
    return EventPage(rows, cursor)


async def distinct_values(conn: Connection, column: str) -> list[str]:
    """The values a filter column takes, by a loose index scan (one index probe per value)."""
    if column not in FILTER_COLUMNS:
        raise ValueError(column)
    sql = f"""
    WITH RECURSIVE v AS (
        (SELECT {column} AS value FROM events ORDER BY {column} LIMIT 1)
        UNION ALL
        SELECT (SELECT {column} FROM events WHERE {column} > v.value ORDER BY {column} LIMIT 1) FROM v
        WHERE v.value IS NOT NULL
    )
    SELECT value FROM v WHERE value IS NOT NULL LIMIT 200
    """  # noqa: S608 (column is one of FILTER_COLUMNS)
    return [r["value"] for r in await conn.fetch(sql)]


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    subscriber: str
    event_type: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    attempt_rows: list[dict[str, Any]] = field(default_factory=list)
    dead_letter: str | None = None  # reason, when an open dead letter holds it


@dataclass(frozen=True, slots=True)
class EventDetail:
    id: int
    provider: str
    kind: str
    status: str
    request_id: str
    idempotency_key: str
    received_at: dt.datetime
    processed_at: dt.datetime
    raw_body_json: str | None  # pretty JSON, only when the raw body is plain JSON
    raw_body_note: str
    payload_json: str | None
    headers: dict[str, str]
    decision: dict[str, Any] | None
    policy_version: int | None
    ids: list[str]
    notifications: list[Notification]
    tss_requests: list[dict[str, Any]]


def raw_body_view(raw: bytes) -> tuple[str | None, str]:
    """Pretty JSON of a raw body that is plain JSON; otherwise nothing, and why (never ciphertext)."""
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, f"not shown: {len(raw)} bytes that are not plain JSON (ciphertext, a form or a token)"
    if not isinstance(parsed, dict | list):
        return None, f"not shown: {len(raw)} bytes, a bare JSON value (e.g. an encrypted string)"
    return json.dumps(parsed, indent=2, ensure_ascii=False, sort_keys=True), "plain JSON"


def _pretty(value: Any) -> str | None:
    return None if value is None else json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


_DETAIL = """
SELECT id, provider, kind, status, request_id, idempotency_key, received_at, processed_at, raw_body,
       payload, headers, decision, policy_version,
       coalesce(console_event_ids(idempotency_key, request_id, payload), '{}') AS ids
FROM events WHERE id = $1
"""
_NOTIFICATIONS = """
SELECT n.id, s.name AS subscriber, n.event_type, n.status, n.attempts, n.last_status, n.last_error,
       n.created_at, n.delivered_at, d.reason AS dead_letter
FROM notifications n JOIN subscribers s ON s.id = n.subscriber_id
LEFT JOIN dead_letters d ON d.job = $2 AND d.ref = n.id AND d.replayed_at IS NULL
WHERE n.event_id = $1 ORDER BY n.created_at, n.id
"""
_ATTEMPTS = """
SELECT notification_id, attempt, attempted_at, duration_ms, status_code, outcome, error
FROM delivery_attempts WHERE notification_id = ANY ($1) ORDER BY notification_id, attempt
"""
_TSS = """
SELECT wallet_uuid::text AS wallet_uuid, tss_request_id, vault_id, reported_status, waas_status, waas_terminal,
       disagreement, attempts, last_error, next_check_at, waas_synced_at, last_reported_at
FROM tss_requests WHERE tss_request_id = ANY ($1)
"""


async def event_detail(conn: Connection, event_id: int) -> EventDetail | None:
    """One event with its notifications (and their attempts) and reconciliation state."""
    row = await conn.fetchrow(_DETAIL, event_id)
    if row is None:
        return None
    notes = await _notifications(conn, event_id)
    ids = list(row["ids"])
    tss = [dict(r) for r in await conn.fetch(_TSS, ids)]
    raw_json, raw_note = raw_body_view(bytes(row["raw_body"]))
    headers = row["headers"] if isinstance(row["headers"], dict) else {}
    return EventDetail(
        id=row["id"],
        provider=row["provider"],
        kind=row["kind"],
        status=row["status"],
        request_id=row["request_id"],
        idempotency_key=row["idempotency_key"],
        received_at=row["received_at"],
        processed_at=row["processed_at"],
        raw_body_json=raw_json,
        raw_body_note=raw_note,
        payload_json=_pretty(row["payload"]),
        headers=scrub_headers({str(k): str(v) for k, v in headers.items()}),
        decision=row["decision"] if isinstance(row["decision"], dict) else None,
        policy_version=row["policy_version"],
        ids=ids,
        notifications=notes,
        tss_requests=tss,
    )


async def _notifications(conn: Connection, event_id: int) -> list[Notification]:
    rows: list[asyncpg.Record] = await conn.fetch(_NOTIFICATIONS, event_id, DELIVER_NOTIFICATION)
    attempts: dict[str, list[dict[str, Any]]] = {}
    if rows:
        for a in await conn.fetch(_ATTEMPTS, [r["id"] for r in rows]):
            attempts.setdefault(a["notification_id"], []).append(dict(a))
    return [Notification(**dict(r), attempt_rows=attempts.get(r["id"], [])) for r in rows]
