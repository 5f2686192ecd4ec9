"""The policy admin API on a real gateway: publish, show, test, promote, rollback, diff."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from shared.config import ChainupCosignerSettings, Settings
from shared.db import Pool
from tests.conftest import RunWorker, with_providers
from tests.gateway.test_policy_shadow import ACTIVE, AMOUNTS, LOOSER, STRICTER, TOKEN, Client, ask, seen

Gateway = Callable[[Settings], Awaitable[Client]]
ADMIN = "admin-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def admin_settings(settings: Settings, *, token: str | None = ADMIN) -> Settings:
    cosigner = with_providers(settings, chainup_cosigner=ChainupCosignerSettings(token=TOKEN))
    return dataclasses.replace(cosigner, admin_token=token, key_prefix=f"t{secrets.token_hex(4)}")


async def call(client: Client, method: str, path: str, body: str | None = None, **query: str) -> tuple[int, Any]:
    response = await client.request(method, path, data=body, params=query, headers=AUTH)
    return response.status, await response.json()


async def test_without_a_token_the_policy_api_does_not_exist_and_a_wrong_one_is_refused(
    gateway: Gateway, settings: Settings
) -> None:
    off = await gateway(admin_settings(settings, token=None))
    assert (await off.get("/admin/policy", headers=AUTH)).status == 404
    assert (await off.post("/admin/policy/promote", headers=AUTH)).status == 404
    on = await gateway(admin_settings(settings))
    wrong = await on.post("/admin/policy", data=ACTIVE, headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and wrong.headers["WWW-Authenticate"] == 'Bearer realm="callgate-admin"'
    assert (await on.get("/admin/policy/diff?old=1&new=2")).status == 401


async def test_the_lifecycle_through_the_admin_api(
    gateway: Gateway, settings: Settings, db: Pool, redis: Redis, run_worker: RunWorker
) -> None:
    config = admin_settings(settings)
    client = await gateway(config)
    status, body = await call(client, "POST", "/admin/policy", '{"rules": [{"id": "l", "kind": "amount_limit"}]}')
    assert (status, body["error"]) == (422, "refused") and "rules[0]" in body["detail"]
    transfer = {"chain": "ETH", "asset": "USDT", "amount": "5000", "destination": "0xabc"}  # a USDTERC20 withdrawal
    request = {"provider": "chainup_cosigner", "operation": "withdraw", "request_id": "x", "transfers": [transfer]}
    failing = json.dumps({**json.loads(ACTIVE), "examples": [{"name": "big", "request": request, "expect": "APPROVE"}]})
    status, body = await call(client, "POST", "/admin/policy", failing, shadow="true")
    assert status == 422 and body["detail"].startswith("examples[0]: big: expected APPROVE, got REJECT")
    status, body = await call(client, "POST", "/admin/policy", ACTIVE)
    assert (status, body["version"], body["state"], body["created"], body["published_by"]) == (
        201,
        1,
        "active",
        True,
        "admin-api",
    )
    assert (await call(client, "POST", "/admin/policy", ACTIVE))[0] == 200  # unchanged
    await seen([client], 1)
    assert [await ask(client, rid, amount) for rid, amount in AMOUNTS.items()] == ["SUCCESS"] * 3 + ["FAILURE"]
    await run_worker(config)

    status, report = await call(client, "POST", "/admin/policy/test", STRICTER, since="1h", max_changed="1")
    assert (status, report["requests"], report["changed"], report["exceeded"]) == (200, 4, 2, True)
    assert sorted(c["request_id"] for c in report["changes"]) == ["r-2", "r-3"]
    status, report = await call(client, "POST", "/admin/policy/test", LOOSER, max_changed_pct="25")
    assert (report["changed"], report["exceeded"], report["by_reason"]) == (1, False, {"allowed": 1})
    assert (await call(client, "POST", "/admin/policy/test", LOOSER, since="soon"))[0] == 400
    assert (await call(client, "POST", "/admin/policy/test", LOOSER, provider="uuwallet"))[1]["requests"] == 0

    assert (await call(client, "POST", "/admin/policy/promote"))[0] == 409  # no shadow yet
    status, body = await call(client, "POST", "/admin/policy", STRICTER, shadow="true")
    assert (status, body["version"], body["state"]) == (201, 2, "shadow")
    await seen([client], 1, shadow=2)
    status, shown = await call(client, "GET", "/admin/policy")
    assert (shown["active"]["version"], shown["shadow"]["version"], shown["shadow"]["source"]) == (1, 2, STRICTER)
    assert [v["version"] for v in shown["versions"]] == [2, 1]
    status, difference = await call(client, "GET", "/admin/policy/diff", old="1", new="2")
    assert (status, difference["changed"]) == (
        200,
        [{"id": "usdt-limit", "fields": [{"field": "max_amount", "old": "1000", "new": "500"}]}],
    )
    assert (await call(client, "GET", "/admin/policy/diff", old="1", new="9"))[0] == 404
    assert (await call(client, "GET", "/admin/policy/diff", old="one", new="2"))[0] == 400

    status, body = await call(client, "POST", "/admin/policy/promote")
    assert (status, body["version"], body["state"]) == (201, 3, "active")
    await seen([client], 3)
    assert await ask(client, "a-1", "600") == "FAILURE"
    status, body = await call(client, "POST", "/admin/policy/rollback")
    assert (status, body["version"]) == (201, 4)
    await seen([client], 4)
    assert await ask(client, "a-2", "600") == "SUCCESS"
    assert json.loads(ACTIVE) == (await db.fetchval("SELECT document FROM policies WHERE version = 4"))
