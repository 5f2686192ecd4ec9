"""Delivery and risk settings: read once from the environment, refused by name, used by the worker."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from callgate.demo import wyre_transaction
from shared.config import Settings
from shared.db import Pool
from shared.errors import ConfigError
from shared.risk.checks import VelocityLimit
from tests.conftest import WYRE_TOKEN, RunWorker
from tests.gateway.test_wyre import Gateway


def test_delivery_and_risk_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CALLGATE_DELIVERY_SCHEDULE_SECONDS": "1, 2.5",
            "CALLGATE_DELIVERY_MAX_INFLIGHT": "3",
            "CALLGATE_DELIVERY_BREAKER_THRESHOLD": "2",
            "CALLGATE_RISK_VELOCITY": "60:3,3600:10:5.5",
            "CALLGATE_RISK_LARGE_AMOUNTS": "btc=1,*=100",
            "CALLGATE_RISK_DENY_COUNTERPARTIES": "bitcoin:A, bitcoin:B",
            "CALLGATE_RISK_REJECTS_TO_FREEZE": "2",
        }
    )
    assert settings.delivery.schedule_s == (1.0, 2.5) and settings.delivery.max_attempts == 3
    assert (settings.delivery.max_inflight, settings.delivery.breaker_threshold) == (3, 2)
    assert settings.risk.velocity == (VelocityLimit(60, 3), VelocityLimit(3600, 10, Decimal("5.5")))
    assert settings.risk.large_amounts == {"BTC": Decimal(1), "*": Decimal(100)}
    assert settings.risk.deny_counterparties == {"bitcoin:A", "bitcoin:B"}
    assert settings.risk.rejects_to_freeze == 2
    assert Settings.from_env({}).delivery.schedule_s[0] == 5.0  # defaults when unset


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CALLGATE_DELIVERY_SCHEDULE_SECONDS", "5,soon"),
        ("CALLGATE_DELIVERY_SCHEDULE_SECONDS", "5,0"),
        ("CALLGATE_DELIVERY_MAX_INFLIGHT", "0"),
        ("CALLGATE_RISK_VELOCITY", "60"),
        ("CALLGATE_RISK_VELOCITY", "60:ten"),
        ("CALLGATE_RISK_LARGE_AMOUNTS", "BTC=lots"),
        ("CALLGATE_RISK_KYT_FREEZE_LEVEL", "101"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)


async def test_the_worker_judges_with_the_configured_risk_rules(
    gateway: Gateway, settings: Settings, run_worker: RunWorker, db: Pool
) -> None:
    configured = dataclasses.replace(
        settings, risk=Settings.from_env({"CALLGATE_RISK_DENY_COUNTERPARTIES": "bitcoin:EXTERNAL"}).risk
    )
    client = await gateway(configured)
    url = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
    assert (await client.post(url, data=wyre_transaction("CONFIRMED", "TR_CONF0001"))).status == 200
    await run_worker(configured)  # no ctx override: the rules come from the settings
    assert await db.fetchval("SELECT check_name FROM risk_findings") == "deny_list"
