"""Try a candidate policy on recorded decisions before publishing it.

Every synchronous provider audits its decision requests (`decision.request`; Cobo TSS keeps them
in `payload.request`), in the form `request_to_data` writes, so they can be replayed: each is
decided again under the candidate snapshot, at the time it was received, and compared with the
action it got. Expected orders are taken from the registry as it is now, unconfirmed (a
confirmation the recorded answer itself caused must not turn into a difference).
`replay_recorded` takes the latest N (the console); `replay_window` streams a whole time window
(`callgate policy test`, the admin API).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
import orjson

from shared.db import Pool
from shared.errors import PolicyError
from shared.orders import list_orders
from shared.policy.document import parse_document
from shared.policy.model import Decision, DecisionRequest, ExpectedOrder, Operation, Transfer
from shared.policy.requests import parse_decision_request, request_to_data
from shared.policy.snapshot import PolicySnapshot, compile_snapshot, decide
from shared.policy.store import validate

_RECORDED = """
SELECT provider, request_id, coalesce(decision->'request', payload->'request') AS request,
       decision->>'action' AS action, extract(epoch FROM received_at)::float8 AS received_at
FROM events
WHERE (decision ? 'request' OR payload ? 'request') AND decision ? 'action'
ORDER BY received_at DESC, id DESC
LIMIT $1
"""
MAX_ORDERS = 100_000


@dataclass(frozen=True, slots=True)
class Change:
    """A recorded decision the candidate would answer differently."""

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


async def replay_recorded(pool: Pool, candidate: PolicySnapshot, *, limit: int = 1000) -> ReplayReport:
    """Decide the latest `limit` recorded requests under `candidate`; report what would change."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(_RECORDED, limit)
    orders = await _current_orders(pool)
    changes: list[Change] = []
    unreadable = 0
    for row in rows:
        try:
            request = parse_decision_request(row["request"])
        except PolicyError:
            unreadable += 1
            continue
        decision = decide(candidate, request, orders=orders, now=row["received_at"])
        if decision.action.value != row["action"]:
            codes = tuple(reason.code for reason in decision.reasons)
            changes.append(Change(row["provider"], row["request_id"], row["action"], decision.action.value, codes))
    return ReplayReport(len(rows) - unreadable, unreadable, tuple(changes))


# -- `callgate policy test`: every recorded decision of a window, streamed --------------------

# The request as recorded: in the decision (every synchronous provider, see shared.policy.shadow)
# or, for Cobo TSS events stored before that, in the payload.
_WINDOW = """
SELECT id, provider, coalesce(decision->'request', payload->'request') AS request,
       decision->>'action' AS action, decision->>'reasons' AS reasons,
       extract(epoch FROM received_at)::float8 AS received_at
FROM events
WHERE received_at >= to_timestamp($1) AND (cardinality($2::text[]) = 0 OR provider = ANY($2::text[]))
  AND decision ? 'action' AND (decision ? 'request' OR payload ? 'request')
"""
PREFETCH = 2000
YIELD_EVERY = 256


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


async def replay_window(
    pool: Pool,
    candidate: PolicySnapshot,
    *,
    since: float,
    providers: Sequence[str] = (),
    keep: int = 1000,
) -> WindowReport:
    """Decide every decision recorded since `since` (unix seconds) under `candidate`, streamed
    through a server-side cursor; the first `keep` changes are kept in full, all are counted."""
    orders = await _current_orders(pool)
    report = WindowReport()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(_WINDOW, since, list(providers), prefetch=PREFETCH):
            try:
                request = recorded_request(row["request"])
            except PolicyError:
                report.unreadable += 1
                continue
            report.requests += 1
            if report.requests % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # in a gateway (admin API) live requests must not wait for the whole run
            decision = decide(candidate, request, orders=orders, now=row["received_at"])
            if decision.action.value != row["action"]:
                _count_change(report, row, request.request_id, decision, keep)
    return report


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


async def _current_orders(pool: Pool) -> _Orders:
    stored = await list_orders(pool, limit=MAX_ORDERS)
    return _Orders({(s.order.provider, s.order.order_ref): dataclasses.replace(s.order, confirmed=False)
                    for s in stored})  # fmt: skip


def _count_change(report: WindowReport, row: asyncpg.Record, request_id: str, decision: Decision, keep: int) -> None:
    provider = str(row["provider"])
    report.changed += 1
    report.by_provider[provider] += 1
    for reason in decision.reasons:
        report.by_rule[reason.rule or "(built-in)"] += 1
        report.by_reason[reason.code] += 1
    if len(report.changes) < keep:
        # As text: only the few changed decisions kept in full need it decoded.
        recorded = orjson.loads(row["reasons"] or "[]")
        report.changes.append(
            ChangedDecision(
                event_id=int(row["id"]),
                provider=provider,
                request_id=request_id,
                recorded=str(row["action"]),
                candidate=decision.action.value,
                recorded_reasons=_reason_pairs(recorded),
                candidate_reasons=tuple((r.code, r.rule) for r in decision.reasons),
            )
        )


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
