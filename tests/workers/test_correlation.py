"""Worker log lines carry the correlation id of the callback they work on (the gateway request id)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from callgate.demo import wyre_transaction
from shared.config import Settings
from shared.db import Pool
from shared.notify import subscribers
from shared.risk.checks import RiskConfig
from tests.conftest import WYRE_TOKEN, RunWorker
from tests.gateway.test_middleware import _JsonLines
from tests.gateway.test_wyre import Gateway
from tests.receiver import Receiver
from workers.risk import CONFIG


@pytest.fixture
def log_lines() -> Iterator[_JsonLines]:
    # The gateway's middleware test formats lines the same way: at emit time, in the logging task.
    handler, root = _JsonLines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


async def test_store_risk_and_delivery_lines_carry_the_callbacks_request_id(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, db: Pool, log_lines: _JsonLines
) -> None:
    receiver = await Receiver().start()
    try:
        async with db.acquire() as conn:
            await subscribers.add(conn, "gone", receiver.endpoint("gone"))
        receiver.behave("gone", status=410)  # the delivery logs a warning (subscriber disabled)
        client = await gateway(settings)
        url = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
        assert (await client.post(url, data=wyre_transaction("CONFIRMED", "TR_CORR0001"))).status == 200
        config = RiskConfig(deny_counterparties=frozenset({"bitcoin:EXTERNAL"}))  # the risk check logs a freeze
        await run_worker(settings, ctx={CONFIG: config})
    finally:
        await receiver.stop()
    request_id = await db.fetchval("SELECT request_id FROM events")
    assert isinstance(request_id, str) and request_id
    by_logger = {str(line["logger"]): line for line in log_lines.lines if str(line["logger"]).startswith("workers.")}
    for name in ("workers.store", "workers.risk", "workers.deliver"):
        assert by_logger[name].get("correlation_id") == request_id, (name, by_logger.get(name))
