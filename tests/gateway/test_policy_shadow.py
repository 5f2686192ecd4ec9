"""The policy lifecycle through real gateways: decisions recorded by the ChainUp co-signer route,
candidates tested against them, a shadow evaluated live, promotion and rollback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from callgate.cli import main
from gateway.app import create_app
from gateway.keys import METRICS, POLICY
from shared.config import ChainupCosignerSettings, Settings
from shared.db import Pool
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.holder import PolicyHolder
from shared.policy.replay import compile_candidate, replay_window, window_data
from shared.policy.store import promote, publish, rollback
from shared.providers import chainup_samples as samples
from tests.conftest import AiohttpClient, RunWorker, sample_value, with_providers

Client = TestClient[web.Request, web.Application]
WITHDRAW = "/chainup/cosigner/withdraw"
TOKEN = "cosigner-" + secrets.token_hex(12)
SANCTIONED = "0x000000000000000000000000000000000000dEaD"


def document(max_amount: str) -> str:
    return json.dumps(
        {
            "rules": [
                {"id": "sanctions", "kind": "destinations", "deny": [SANCTIONED]},
                # The co-signer sample's USDTERC20: chain ETH, asset USDT.
                {
                    "id": "usdt-limit",
                    "kind": "amount_limit",
                    "match": {"chain": "ETH", "asset": "USDT"},
                    "max_amount": max_amount,
                },
            ],
            "defaults": {"*": "REJECT"},
        }
    )


ACTIVE, STRICTER, LOOSER = document("1000"), document("500"), document("2000")
# request id -> amount; under ACTIVE: approved, approved, approved, rejected (over 1000)
AMOUNTS = {"r-1": "100.5", "r-2": "600", "r-3": "900", "r-4": "1500"}


@dataclasses.dataclass
class Gateways:
    settings: Settings
    keys: RedisKeys
    start: Callable[[], Awaitable[Client]]


@pytest.fixture
def gateways(aiohttp_client: AiohttpClient, redis: Redis, db: Pool, settings: Settings) -> Gateways:
    """Co-signer gateways that load and follow the policy store like production ones."""
    config = ChainupCosignerSettings(token=TOKEN)
    cosigner = dataclasses.replace(
        with_providers(settings, chainup_cosigner=config), key_prefix=f"t{secrets.token_hex(4)}"
    )

    async def start() -> Client:
        return await aiohttp_client(create_app(cosigner, metrics=Metrics()))

    return Gateways(cosigner, RedisKeys(cosigner.key_prefix), start)


async def ask(client: Client, request_id: str, amount: str) -> str:
    body = samples.cosigner_body(samples.COSIGNER_WITHDRAW, request_id=request_id, amount=amount)
    response = await client.post(WITHDRAW, data=body, headers={"X-Callgate-Token": TOKEN})
    assert response.status == 200
    return await response.text()


def holder(client: Client) -> PolicyHolder:
    source = client.app[POLICY]
    assert isinstance(source, PolicyHolder)
    return source


async def seen(clients: list[Client], version: int, *, shadow: int | None = None) -> float:
    """Seconds until every gateway decides with `version` (and has `shadow` in shadow)."""
    started = time.monotonic()
    while not all(
        (h := holder(c)).current is not None
        and h.current.version == version
        and (h.shadow.version if h.shadow else None) == shadow
        for c in clients
    ):
        assert time.monotonic() - started < 1.0, "not seen within a second"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def record(g: Gateways, db: Pool, redis: Redis, run_worker: RunWorker) -> Client:
    await publish(db, redis, g.keys, ACTIVE, published_by="test")
    client = await g.start()
    await seen([client], 1)
    assert [await ask(client, rid, amount) for rid, amount in AMOUNTS.items()] == ["SUCCESS"] * 3 + ["FAILURE"]
    await run_worker(g.settings)
    return client


async def test_candidates_are_tested_against_recorded_decisions(
    gateways: Gateways, db: Pool, redis: Redis, run_worker: RunWorker
) -> None:
    await record(gateways, db, redis, run_worker)
    since = time.time() - 60
    stricter = await replay_window(db, compile_candidate(STRICTER), since=since)
    data = window_data(stricter)
    assert (data["requests"], data["unreadable"], data["changed"], data["changed_pct"]) == (4, 0, 2, 50.0)
    assert (data["by_provider"], data["by_rule"], data["by_reason"]) == (
        {"chainup_cosigner": 2},
        {"usdt-limit": 2},
        {"amount_over_limit": 2},
    )
    assert sorted((c.request_id, c.recorded, c.candidate, c.candidate_reasons) for c in stricter.changes) == [
        ("r-2", "APPROVE", "REJECT", (("amount_over_limit", "usdt-limit"),)),
        ("r-3", "APPROVE", "REJECT", (("amount_over_limit", "usdt-limit"),)),
    ]
    assert data["changes"][0]["candidate"] == {  # type: ignore[index]
        "action": "REJECT",
        "reasons": [{"code": "amount_over_limit", "rule": "usdt-limit"}],
    }
    looser = await replay_window(db, compile_candidate(LOOSER), since=since)
    (change,) = looser.changes
    assert (change.request_id, change.recorded, change.candidate) == (
        "r-4",
        "REJECT",
        "APPROVE",
    )
    assert (change.recorded_reasons, change.candidate_reasons) == (
        (("amount_over_limit", "usdt-limit"),),
        (("allowed", "usdt-limit"),),
    )
    assert (await replay_window(db, compile_candidate(ACTIVE), since=since)).changed == 0
    assert (await replay_window(db, compile_candidate(LOOSER), since=since, providers=["uuwallet"])).requests == 0
    assert (await replay_window(db, compile_candidate(LOOSER), since=time.time() + 60)).requests == 0


async def test_policy_test_command_reports_and_enforces_its_threshold(
    gateways: Gateways,
    db: Pool,
    redis: Redis,
    run_worker: RunWorker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await record(gateways, db, redis, run_worker)
    for name, value in (("REDIS_URL", gateways.settings.redis_url), ("DATABASE_URL", gateways.settings.database_url)):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CALLGATE_KEY_PREFIX", gateways.settings.key_prefix)
    stricter = tmp_path / "stricter.json"
    stricter.write_text(STRICTER)
    assert await asyncio.to_thread(main, ["policy", "test", str(stricter), "--max-changed", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("4 recorded decisions replayed, 2 would change (50.00 %) since ")
    assert out[1:4] == [
        "by provider: chainup_cosigner 2",
        "by rule: usdt-limit 2",
        "by reason: amount_over_limit 2",
    ]
    assert "      recorded:  allowed(usdt-limit)" in out
    assert "      candidate: amount_over_limit(usdt-limit)" in out
    assert await asyncio.to_thread(main, ["policy", "test", str(stricter), "--max-changed", "1"]) == 3
    capsys.readouterr()
    args = ["policy", "test", str(stricter), "--format", "json", "--max-changed-pct", "40", "--since", "1h"]
    assert await asyncio.to_thread(main, args) == 3
    assert json.loads(capsys.readouterr().out)["changed"] == 2
    args = ["policy", "test", str(stricter), "--provider", "uuwallet", "--max-changed", "0"]
    assert await asyncio.to_thread(main, args) == 0


async def test_a_shadow_is_evaluated_counted_and_recorded_without_changing_answers(
    gateways: Gateways, db: Pool, redis: Redis, run_worker: RunWorker
) -> None:
    await publish(db, redis, gateways.keys, ACTIVE, published_by="test")
    client = await gateways.start()
    await seen([client], 1)
    shadowed = await publish(db, redis, gateways.keys, STRICTER, published_by="test", shadow=True)
    assert (shadowed.policy.version, shadowed.policy.state) == (2, "shadow")
    await seen([client], 1, shadow=2)
    # Answers stay those of the active version (r-2 and r-3 are over the shadow's limit).
    assert [await ask(client, rid, amount) for rid, amount in AMOUNTS.items()] == ["SUCCESS"] * 3 + ["FAILURE"]
    labels = {"provider": "chainup_cosigner", "rule": "usdt-limit"}
    assert sample_value(client.app[METRICS], "callgate_policy_shadow_disagreements_total", labels) == 2
    await run_worker(gateways.settings)
    rows = await db.fetch("SELECT idempotency_key, decision, policy_version FROM events ORDER BY idempotency_key")
    shadows = {row["idempotency_key"].split(":")[2]: row["decision"]["shadow"] for row in rows}
    assert {rid: (s["version"], s["action"], s["agrees"]) for rid, s in shadows.items()} == {
        "r-1": (2, "APPROVE", True),
        "r-2": (2, "REJECT", False),
        "r-3": (2, "REJECT", False),
        "r-4": (2, "REJECT", True),
    }
    assert shadows["r-2"]["reasons"] == [{"code": "amount_over_limit", "rule": "usdt-limit"}]
    assert {row["policy_version"] for row in rows} == {1}
    assert rows[0]["decision"]["request"]["request_id"] == "r-1"


async def test_promote_and_rollback_change_the_next_answer_on_two_gateways_within_a_second(
    gateways: Gateways, db: Pool, redis: Redis
) -> None:
    await publish(db, redis, gateways.keys, ACTIVE, published_by="test")
    first, second = await gateways.start(), await gateways.start()
    await seen([first, second], 1)
    await publish(db, redis, gateways.keys, STRICTER, published_by="test", shadow=True)
    await seen([first, second], 1, shadow=2)
    assert await ask(first, "p-1", "600") == "SUCCESS"
    promoted = await promote(db, redis, gateways.keys, published_by="test")
    assert (promoted.policy.version, promoted.policy.state, promoted.announced) == (3, "active", True)
    await seen([first, second], 3)  # the shadow ended with its promotion
    assert await ask(second, "p-2", "600") == "FAILURE"
    rolled = await rollback(db, redis, gateways.keys, published_by="test")
    assert (rolled.policy.version, rolled.policy.sha256) == (
        4,
        await db.fetchval("SELECT sha256 FROM policies WHERE version = 1"),
    )
    await seen([first, second], 4)
    assert await ask(first, "p-3", "600") == "SUCCESS"
    assert await ask(second, "p-2", "600") == "FAILURE"  # a retry keeps its first answer
