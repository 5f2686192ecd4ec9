"""Try a candidate policy on recorded decisions before publishing it.

Every synchronous provider audits its decision requests (`decision.request`; Cobo TSS keeps them
in `payload.request`), in the form `request_to_data` writes, so they can be replayed: each is
decided again under the candidate snapshot, at the time it was received, and compared with the
action it got. Expected orders are taken from the registry as it is now, unconfirmed (a
confirmation the recorded answer itself caused must not turn into a difference).

One replay serves every caller, in two halves that can run in different processes:
`recorded_pages` streams the recorded decisions (a time window, or the latest N) from PostgreSQL
in pages of plain tuples, and `Replay` decides pages and counts what changes. `replay_window`
runs both in process (`callgate policy test`), `replay_recorded` on the latest N (the console);
the gateway's admin API streams the pages on its event loop and decides them in a helper process
(`gateway.policy_test_pool`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import orjson

from shared.db import Pool
from shared.errors import CallgateError, PolicyError
from shared.orders import list_orders
from shared.policy.document import parse_document
from shared.policy.model import Decision, DecisionRequest, ExpectedOrder, Operation, OrderView, Transfer
from shared.policy.requests import parse_decision_request, request_to_data
from shared.policy.snapshot import PolicySnapshot, compile_snapshot, decide
from shared.policy.store import validate

MAX_ORDERS = 100_000
PAGE = 1000  # rows per page: one round trip, and (in the gateway) one helper call, per page

# The request as recorded: in the decision (every synchronous provider, see shared.policy.shadow)
# or, for Cobo TSS events stored before that, in the payload. It and the recorded reasons are read
# as text: they are decoded where the rows are decided (not on the gateway's event loop), and the
# reasons only for the few changes kept in full. Newest first, so that the changes kept in full
# are the latest; $1 NULL: any time, $3 NULL: no limit.
_COLUMNS = """
SELECT id, provider, coalesce(decision->'request', payload->'request')::text AS request,
       decision->>'action' AS action, decision->>'reasons' AS reasons,
       extract(epoch FROM received_at)::float8 AS received_at
"""
_WHERE = """
FROM events
WHERE ($1::float8 IS NULL OR received_at >= to_timestamp($1))
  AND (cardinality($2::text[]) = 0 OR provider = ANY($2::text[]))
  AND decision ? 'action' AND (decision ? 'request' OR payload ? 'request')
"""
_RECORDED = _COLUMNS + _WHERE + "ORDER BY received_at DESC, id DESC LIMIT $3::bigint"
_COUNT = "SELECT count(*) FROM (SELECT 1" + _WHERE + "LIMIT $3::bigint) AS recorded"  # noqa: S608 (constant fragments)

# (event id, provider, request as JSON text, recorded action, recorded reasons as JSON text,
# received at in unix seconds): plain tuples, cheap to hand to another process.
RecordedRow = tuple[int, str, str, str, str | None, float]


class WindowTooLarge(CallgateError):
    """A replay was bounded and the selection holds more recorded decisions than the bound."""

    def __init__(self, at_most: int) -> None:
        super().__init__(at_most)
        self.at_most = at_most

    def __str__(self) -> str:
        return f"more than {self.at_most} recorded decisions"


@dataclass(frozen=True, slots=True)
class Change:
    """A recorded decision the candidate would answer differently (the console's view)."""

    provider: str
    request_id: str
    recorded: str
    candidate: str
    reasons: tuple[str, ...]  # the candidate's reason codes


@dataclass(frozen=True, slots=True)
class ReplayReport:
    replayed: int
    unreadable: int  # recorded requests that no longer parse (an older shape)
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class _Orders:
    orders: dict[tuple[str, str], ExpectedOrder]

    def lookup(self, provider: str, order_ref: str) -> ExpectedOrder | None:
        return self.orders.get((provider, order_ref))


@dataclass(frozen=True, slots=True)
class ChangedDecision:
    """One recorded decision the candidate answers differently, with both sets of reasons."""

    event_id: int
    provider: str
    request_id: str  # the provider's, as the decision request carries it
    recorded: str
    candidate: str
    recorded_reasons: tuple[tuple[str, str], ...]  # (code, rule)
    candidate_reasons: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class WindowReport:
    """What `callgate policy test` prints: totals, changes grouped, the first changes in full."""

    requests: int = 0
    unreadable: int = 0
    changed: int = 0
    by_provider: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)  # the rules behind the candidate's answer
    by_reason: Counter[str] = field(default_factory=Counter)
    changes: list[ChangedDecision] = field(default_factory=list)

    @property
    def changed_pct(self) -> float:
        return 100.0 * self.changed / self.requests if self.requests else 0.0

    def exceeds(self, max_changed: float | None, max_changed_pct: float | None) -> bool:
        """More changes than a threshold allows (None: no such threshold)."""
        return (max_changed is not None and self.changed > max_changed) or (
            max_changed_pct is not None and self.changed_pct > max_changed_pct
        )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str) -> float:
    """Seconds from `90s`, `30m`, `24h`, `7d` (or a bare number of seconds); ValueError otherwise."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in _UNITS else (text, "s")
    seconds = float(number) * _UNITS[unit]
    if not 0 < seconds < float("inf"):
        raise ValueError(f"not a positive window: {text!r}")
    return seconds


class Replay:
    """Decides pages of recorded decisions under a candidate and counts what would change; the
    first `keep` changes are kept in full, all are counted (pure: no I/O, any process)."""

    def __init__(self, candidate: PolicySnapshot, orders: OrderView, *, keep: int = 1000) -> None:
        self.report = WindowReport()
        self._candidate = candidate
        self._orders = orders
        self._keep = keep

    def feed(self, rows: Iterable[RecordedRow]) -> None:
        """Decide one page."""
        report, candidate, orders = self.report, self._candidate, self._orders
        for event_id, provider, text, action, reasons, received_at in rows:
            try:
                request = recorded_request(orjson.loads(text))
            except (orjson.JSONDecodeError, PolicyError):
                report.unreadable += 1
                continue
            report.requests += 1
            decision = decide(candidate, request, orders=orders, now=received_at)
            if decision.action.value != action:
                self._count_change(event_id, provider, request.request_id, action, reasons, decision)

    def _count_change(
        self, event_id: int, provider: str, request_id: str, action: str, reasons: str | None, decision: Decision
    ) -> None:
        report = self.report
        report.changed += 1
        report.by_provider[provider] += 1
        for reason in decision.reasons:
            report.by_rule[reason.rule or "(built-in)"] += 1
            report.by_reason[reason.code] += 1
        if len(report.changes) < self._keep:
            report.changes.append(
                ChangedDecision(
                    event_id=event_id,
                    provider=provider,
                    request_id=request_id,
                    recorded=action,
                    candidate=decision.action.value,
                    recorded_reasons=_reason_pairs(orjson.loads(reasons or "[]")),
                    candidate_reasons=tuple((r.code, r.rule) for r in decision.reasons),
                )
            )


async def recorded_pages(
    pool: Pool,
    *,
    since: float | None = None,
    providers: Sequence[str] = (),
    latest: int | None = None,
    at_most: int | None = None,
    page: int = PAGE,
) -> AsyncGenerator[list[RecordedRow], None]:
    """The decisions recorded since `since` (unix seconds; None: any time) by `providers` (none:
    all), the `latest` N only if given, newest first, in pages through a server-side cursor (memory
    stays flat whatever the window), all from one snapshot. With `at_most`, a selection holding
    more raises WindowTooLarge before the first page. Close it (`contextlib.aclosing`) when you
    stop early: it holds a connection."""
    names = list(providers)
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        if at_most is not None:  # counted in the same snapshot as the rows streamed below
            counted = at_most + 1 if latest is None else min(latest, at_most + 1)
            if await conn.fetchval(_COUNT, since, names, counted) > at_most:
                raise WindowTooLarge(at_most)
        cursor = await conn.cursor(_RECORDED, since, names, latest)
        while rows := await cursor.fetch(page):
            yield [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def replay_window(
    pool: Pool,
    candidate: PolicySnapshot,
    *,
    since: float,
    providers: Sequence[str] = (),
    keep: int = 1000,
) -> WindowReport:
    """Decide every decision recorded since `since` (unix seconds) under `candidate`, in this
    process; the first `keep` changes (the latest) are kept in full, all are counted."""
    return await _decided_here(
        pool, Replay(candidate, await current_orders(pool), keep=keep), since=since, providers=providers
    )


async def replay_recorded(pool: Pool, candidate: PolicySnapshot, *, limit: int = 1000) -> ReplayReport:
    """Decide the latest `limit` recorded requests under `candidate`; report what would change."""
    report = await _decided_here(pool, Replay(candidate, await current_orders(pool), keep=limit), latest=limit)
    changes = (
        Change(c.provider, c.request_id, c.recorded, c.candidate, tuple(code for code, _ in c.candidate_reasons))
        for c in report.changes
    )
    return ReplayReport(report.requests, report.unreadable, tuple(changes))


async def _decided_here(
    pool: Pool, replay: Replay, *, since: float | None = None, providers: Sequence[str] = (), latest: int | None = None
) -> WindowReport:
    async with contextlib.aclosing(recorded_pages(pool, since=since, providers=providers, latest=latest)) as pages:
        async for rows in pages:
            replay.feed(rows)
    return replay.report


def recorded_request(data: object) -> DecisionRequest:
    """A recorded request: the exact form `request_to_data` writes takes a fast path (the full
    parser is two thirds of a replay's time); anything else the validating parser (PolicyError)."""
    try:
        return _exact(data)
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return parse_decision_request(data)


_FIELDS = frozenset(request_to_data(DecisionRequest("p", Operation.PING, "r")))
_OPERATIONS: dict[str, Operation] = {op.value: op for op in Operation}
_TRANSFER_FIELDS = frozenset({"chain", "asset", "amount", "destination", "contract", "unlimited_approval"})


def _exact(data: object) -> DecisionRequest:
    if type(data) is not dict or data.keys() != _FIELDS:
        raise TypeError("not the recorded shape")
    provider, threshold = _text(data["provider"]), data["threshold"]
    if provider != provider.strip().lower() or not (threshold is None or type(threshold) is int):
        raise ValueError("not normalised")
    # Positional, and the enum by its value map: this runs once per recorded request.
    return DecisionRequest(
        provider,
        _OPERATIONS[data["operation"]],
        _text(data["request_id"]),
        _maybe(data["wallet"]),
        tuple([_exact_transfer(t) for t in data["transfers"]]),
        tuple([_text(n) for n in data["node_ids"]]),
        threshold,
        _maybe(data["curve"]),
        _maybe(data["signature_type"]),
        _maybe(data["protocol"]),
        _maybe(data["order_ref"]),
        tuple([(_text(k), _text(v)) for k, v in data["attributes"].items()]),
    )


def _exact_transfer(data: object) -> Transfer:
    # Chains, assets and addresses are normalised again by `decide` and the rules themselves.
    if type(data) is not dict or data.keys() != _TRANSFER_FIELDS or type(data["unlimited_approval"]) is not bool:
        raise TypeError("not the recorded shape")
    amount = data["amount"]
    number = None if amount is None else Decimal(_text(amount))
    if number is not None and not number.is_finite():
        raise ValueError("not finite")
    destination, contract = data["destination"], data["contract"]
    return Transfer(
        _text(data["chain"]),
        _text(data["asset"]),
        number,
        None if destination is None else _text(destination),
        None if contract is None else _text(contract),
        data["unlimited_approval"],
    )


def _text(value: object) -> str:
    if type(value) is not str:
        raise TypeError("not a string")
    return value


def _maybe(value: object) -> str | None:
    return None if value is None else _text(value)


async def current_orders(pool: Pool) -> OrderView:
    """The expected-order registry as it is now, every order unconfirmed (plain data: it may be
    handed to another process)."""
    stored = await list_orders(pool, limit=MAX_ORDERS)
    return _Orders({(s.order.provider, s.order.order_ref): dataclasses.replace(s.order, confirmed=False)
                    for s in stored})  # fmt: skip


def _reason_pairs(recorded: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(recorded, list):
        return ()
    return tuple((str(r.get("code", "")), str(r.get("rule", ""))) for r in recorded if isinstance(r, dict))


def window_data(report: WindowReport) -> dict[str, object]:
    """The JSON form of a report (`policy test --format json`, the admin API)."""
    return {
        "requests": report.requests,
        "unreadable": report.unreadable,
        "changed": report.changed,
        "changed_pct": round(report.changed_pct, 4),
        "by_provider": dict(report.by_provider.most_common()),
        "by_rule": dict(report.by_rule.most_common()),
        "by_reason": dict(report.by_reason.most_common()),
        "changes": [_change_data(c) for c in report.changes],
    }


def _change_data(c: ChangedDecision) -> dict[str, object]:
    return {
        "event_id": c.event_id,
        "provider": c.provider,
        "request_id": c.request_id,
        "recorded": {
            "action": c.recorded,
            "reasons": [{"code": code, "rule": rule} for code, rule in c.recorded_reasons],
        },
        "candidate": {
            "action": c.candidate,
            "reasons": [{"code": code, "rule": rule} for code, rule in c.candidate_reasons],
        },
    }


def compile_candidate(text: str) -> PolicySnapshot:
    """A candidate document compiled for testing, checked as publishing checks it (PolicyError)."""
    data, sha256 = validate(text)
    return compile_snapshot(parse_document(data), version=0, published_at=0.0, sha256=sha256)
