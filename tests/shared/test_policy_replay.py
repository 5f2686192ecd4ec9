"""A candidate policy replayed on recorded decisions (real Postgres)."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal

from shared.db import Pool, insert_events
from shared.jobs import EventEnvelope
from shared.policy.document import parse_document
from shared.policy.model import DecisionRequest, Operation, Transfer
from shared.policy.replay import replay_recorded
from shared.policy.requests import request_to_data
from shared.policy.snapshot import compile_snapshot

TREASURY = "0x1111111111111111111111111111111111111111"


def recorded(request_id: str, amount: str, action: str) -> EventEnvelope:
    transfer = Transfer("ETH", "USDT", Decimal(amount), TREASURY)
    request = DecisionRequest("cobo_tss", Operation.KEYSIGN, request_id, transfers=(transfer,))
    return EventEnvelope(
        provider="cobo_tss",
        kind="decision.keysign",
        idempotency_key=request_id,
        received_at=time.time(),
        raw_body=b"{}",
        request_id=request_id,
        payload={"request": request_to_data(request)},
        decision={"action": action, "reasons": []},
    )


async def test_replay_reports_the_decisions_a_candidate_would_change(db: Pool) -> None:
    async with db.acquire() as conn:
        await insert_events(conn, [recorded("small", "10", "APPROVE"), recorded("large", "5000", "APPROVE")])
        older = dataclasses.replace(recorded("old", "1", "REJECT"), payload={"request": {"shape": "older"}})
        await insert_events(conn, [older])
    document = parse_document({"rules": [{"id": "usdt", "kind": "amount_limit", "max_amount": "1000"}]})
    report = await replay_recorded(db, compile_snapshot(document, version=0, published_at=0.0, sha256=""))
    assert (report.replayed, report.unreadable) == (2, 1)
    assert [(c.request_id, c.recorded, c.candidate, c.reasons) for c in report.changes] == [
        ("large", "APPROVE", "REJECT", ("amount_over_limit",))
    ]
