"""A freeze raised by a risk check reaches the next synchronous decision, within a second."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg
import yaml
from redis.asyncio import Redis

from gateway.app import create_app
from shared.config import CoboTssSettings, Settings
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.store import publish
from shared.providers import cobo_tss_samples as samples
from shared.risk.freezes import Freeze, freeze, unfreeze
from tests.conftest import AiohttpClient, with_providers
from tests.gateway.test_cobo_tss import NODE, OURS, RULES


async def test_a_wallet_frozen_by_a_risk_check_is_refused_until_unfrozen(
    aiohttp_client: AiohttpClient, settings: Settings, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    keys = RedisKeys(settings.key_prefix)
    document = yaml.safe_dump({"rules": RULES, "defaults": {"cobo_tss": "REJECT"}})
    await publish(db, redis, keys, document, published_by="test")
    config = CoboTssSettings(node_public_key=NODE.public_key(), private_key=OURS)
    app = create_app(with_providers(dataclasses.replace(settings), cobo_tss=config), metrics=Metrics())
    client = await aiohttp_client(app)

    async def ask(request_id: str) -> dict[str, object]:
        token = samples.request_token(samples.keysign(request_id, wallet_id="wallet-7"), NODE)
        response = await client.post("/cobo/tss-node/v2/check", data={"TSS_JWT_MSG": token})
        return samples.read_response(await response.text(), OURS.public_key())

    async def first_answer_after(change: str, action: str) -> dict[str, object]:
        deadline = time.monotonic() + 2.0
        n = 0
        while True:
            n += 1
            answer = await ask(f"{change}-{n}")  # a new request each time: no memo
            if answer["action"] == action or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.05)

    assert (await ask("before"))["action"] == "APPROVE"
    await freeze(redis, keys, Freeze("wallet-7", "deny_list", "counterparty on a deny list", "wyre:x", time.time()))
    frozen = await first_answer_after("frozen", "REJECT")
    assert frozen["action"] == "REJECT"
    assert "wallet_frozen_by_risk" in str(frozen["error"])
    await unfreeze(redis, keys, "wallet-7")
    assert (await first_answer_after("thawed", "APPROVE"))["action"] == "APPROVE"
