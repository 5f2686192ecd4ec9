"""Try a candidate policy on recorded decisions before publishing it.

Providers that audit their decision requests (`payload.request`, the form `request_to_data`
writes) can be replayed: each recorded request is decided again under the candidate snapshot, at
the time it was received, and compared with the action it got. Expected orders are taken from the
registry as it is now, unconfirmed (a confirmation the recorded answer itself caused must not turn
into a difference).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shared.db import Pool
from shared.errors import PolicyError
from shared.orders import list_orders
from shared.policy.model import ExpectedOrder
from shared.policy.requests import parse_decision_request
from shared.policy.snapshot import PolicySnapshot, decide

_RECORDED = """
SELECT provider, request_id, payload->'request' AS request, decision->>'action' AS action,
       extract(epoch FROM received_at)::float8 AS received_at
FROM events
WHERE payload ? 'request' AND decision ? 'action'
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
    stored = await list_orders(pool, limit=MAX_ORDERS)
    orders = _Orders({(s.order.provider, s.order.order_ref): dataclasses.replace(s.order, confirmed=False)
                      for s in stored})  # fmt: skip
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
