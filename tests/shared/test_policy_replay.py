"""A candidate policy replayed on recorded decisions (real Postgres)."""

from __future__ import annotations

import dataclasses
import json
import time
from decimal import Decimal
from typing import Any

import pytest

from shared.db import Pool, insert_events
from shared.jobs import EventEnvelope
from shared.policy.document import parse_document
from shared.policy.model import DecisionRequest, Operation, Transfer
from shared.policy.replay import WindowTooLarge, recorded_pages, replay_recorded, replay_window
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


async def test_recorded_decisions_stream_newest_first_in_pages_and_a_bound_refuses_a_larger_window(db: Pool) -> None:
    now = time.time()
    async with db.acquire() as conn:
        await insert_events(
            conn, [dataclasses.replace(recorded(f"r-{n}", "10", "APPROVE"), received_at=now - 10 + n) for n in range(5)]
        )

    async def ids(**selection: Any) -> list[list[str]]:
        return [[json.loads(row[2])["request_id"] for row in rows] async for rows in recorded_pages(db, **selection)]

    assert await ids(page=2) == [["r-4", "r-3"], ["r-2", "r-1"], ["r-0"]]
    assert await ids(latest=2) == [["r-4", "r-3"]]
    assert await ids(since=now - 8.5) == [["r-4", "r-3", "r-2"]]
    assert await ids(providers=["wyre"]) == [] and await ids(providers=["wyre", "cobo_tss"], latest=1) == [["r-4"]]
    assert await ids(at_most=5) == [["r-4", "r-3", "r-2", "r-1", "r-0"]]
    assert await ids(at_most=3, latest=3) == [["r-4", "r-3", "r-2"]]
    with pytest.raises(WindowTooLarge) as refused:
        await ids(at_most=4)
    assert str(refused.value) == "more than 4 recorded decisions"
    with pytest.raises(WindowTooLarge):
        await ids(at_most=3, latest=4)


async def test_a_window_replay_keeps_the_latest_changes_in_full_and_counts_all(db: Pool) -> None:
    now = time.time()
    async with db.acquire() as conn:
        large = [dataclasses.replace(recorded(f"l-{n}", "5000", "APPROVE"), received_at=now - 5 + n) for n in range(3)]
        await insert_events(conn, [*large, recorded("small", "10", "APPROVE")])
    document = parse_document({"rules": [{"id": "usdt", "kind": "amount_limit", "max_amount": "1000"}]})
    candidate = compile_snapshot(document, version=0, published_at=0.0, sha256="")
    report = await replay_window(db, candidate, since=now - 60, keep=2)
    assert (report.requests, report.changed, dict(report.by_rule)) == (4, 3, {"usdt": 3})
    assert [(c.request_id, c.recorded, c.candidate) for c in report.changes] == [
        ("l-2", "APPROVE", "REJECT"),
        ("l-1", "APPROVE", "REJECT"),
    ]
