"""The shadow hook on the Cobo TSS and UU Wallet routes: evaluated after the answer, recorded,
counted; the request recorded for `policy test` (Cobo keeps it in the payload)."""

from __future__ import annotations

import dataclasses
import json
import time

from redis.asyncio import Redis

from gateway.app import create_app
from gateway.keys import METRICS, POLICY
from shared.config import CoboTssSettings, Settings, UuWalletSettings
from shared.db import Pool
from shared.metrics import Metrics
from shared.policy.document import parse_document
from shared.policy.replay import compile_candidate, replay_window
from shared.policy.snapshot import PolicySnapshot, compile_snapshot
from shared.providers import cobo_tss_samples as samples
from shared.providers.uuwallet_samples import DEPOSIT
from tests.conftest import AiohttpClient, RunWorker, sample_value, with_providers
from tests.gateway import test_uuwallet as uu
from tests.gateway.test_cobo_tss import NODE, OURS, RULES, policy

STRICTER = [rule if rule["id"] != "eth" else {**rule, "max_amount": "1"} for rule in RULES]


@dataclasses.dataclass
class ShadowHolder:
    """The two snapshots a production holder offers handlers."""

    current: PolicySnapshot | None
    shadow: PolicySnapshot | None


async def test_cobo_tss_decisions_are_shadowed_after_the_answer(
    aiohttp_client: AiohttpClient, settings: Settings, db: Pool, redis: Redis, run_worker: RunWorker
) -> None:
    config = with_providers(settings, cobo_tss=CoboTssSettings(node_public_key=NODE.public_key(), private_key=OURS))
    app = create_app(config, metrics=Metrics())
    app[POLICY] = ShadowHolder(policy(1, RULES), policy(2, STRICTER))
    client = await aiohttp_client(app)

    async def check(package: dict[str, object]) -> str:
        response = await client.post(
            "/cobo/tss-node/v2/check", data={"TSS_JWT_MSG": samples.request_token(package, NODE)}
        )
        return str(samples.read_response(await response.text(), OURS.public_key())["action"])

    assert await check(samples.keysign("ks-1", amount="1.5")) == "APPROVE"  # the shadow would refuse it
    assert (
        await check(samples.keysign("ks-2", raw_tx=samples.evm_transfer_tx(wei=5 * 10**17), amount="0.5")) == "APPROVE"
    )
    unsupported = {"request_id": "t4", "request_type": 4, "request_detail": "{}", "extra_info": "{}"}
    assert await check(unsupported) == "REJECT"  # refused by the codec: not the policy's, not shadowed
    labels = {"provider": "cobo_tss", "rule": "eth"}
    assert sample_value(client.app[METRICS], "callgate_policy_shadow_disagreements_total", labels) == 1
    await run_worker(config)
    rows = {r["idempotency_key"]: r["decision"] for r in await db.fetch("SELECT idempotency_key, decision FROM events")}
    assert rows["ks-1"]["shadow"] == {
        "version": 2,
        "action": "REJECT",
        "agrees": False,
        "reasons": [{"code": "amount_over_limit", "rule": "eth"}],
    }
    assert rows["ks-2"]["shadow"]["agrees"] is True
    assert "shadow" not in rows["t4"] and all("request" not in d for d in rows.values())
    stricter = {"rules": STRICTER, "defaults": {"cobo_tss": "REJECT"}}
    report = await replay_window(db, compile_candidate(json.dumps(stricter)), since=time.time() - 60)
    assert (report.requests, [c.request_id for c in report.changes]) == (3, ["ks-1"])


async def test_uuwallet_deposits_are_shadowed_and_their_request_recorded(
    aiohttp_client: AiohttpClient, settings: Settings, db: Pool, redis: Redis, run_worker: RunWorker
) -> None:
    config = with_providers(settings, uuwallet=UuWalletSettings(api_keys=uu.API_KEYS, public_key=uu.WAAS.public))
    rules = [r if r["id"] != "deposit-risk" else {**r, "max_risk_level": 2} for r in uu.POLICY_DOCUMENT["rules"]]
    shadow = compile_snapshot(
        parse_document({**uu.POLICY_DOCUMENT, "rules": rules}), version=9, published_at=1.0, sha256="s"
    )
    app = create_app(config, metrics=Metrics())
    app[POLICY] = ShadowHolder(uu._snapshot(), shadow)
    client = await aiohttp_client(app)
    status, answer = await uu._post(client, uu.CALLBACK, DEPOSIT)  # risk 3: held by the shadow, not by the answer
    assert (status, answer["errCode"]) == (200, 0)
    labels = {"provider": "uuwallet", "rule": "deposit-risk"}
    assert sample_value(client.app[METRICS], "callgate_policy_shadow_disagreements_total", labels) == 1
    await run_worker(config)
    (row,) = await db.fetch("SELECT status, decision FROM events")
    assert (row["status"], row["decision"]["action"]) == ("received", "APPROVE")
    assert (row["decision"]["shadow"]["version"], row["decision"]["shadow"]["action"]) == (9, "REJECT")
    assert row["decision"]["request"]["operation"] == "deposit"
    candidate = json.dumps({**uu.POLICY_DOCUMENT, "rules": rules})
    report = await replay_window(db, compile_candidate(candidate), since=time.time() - 60, providers=["uuwallet"])
    assert (report.requests, report.changed, dict(report.by_reason)) == (1, 1, {"risk_level_over_threshold": 1})
