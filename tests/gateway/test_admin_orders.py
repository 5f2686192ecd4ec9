"""Gateway: the admin orders API, and live policy/order state shared by two gateway processes."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.keys import ORDERS, POLICY
from shared.config import Settings
from shared.db import Pool
from shared.keys import RedisKeys
from shared.policy.store import publish

Gateway = Callable[[Settings], Awaitable[TestClient[web.Request, web.Application]]]
TOKEN = "admin-" + secrets.token_hex(8)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDER = {"provider": "uuwallet", "order_ref": "cb-42", "chain": "TRON", "asset": "USDT",
         "destination": "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE", "amount": "500", "expires_in": 600,
         "extras": {"tenantUserId": "u-1"}}  # fmt: skip


def admin(settings: Settings, token: str | None = TOKEN) -> Settings:
    # A private key prefix: pub/sub channels are shared by every Redis database and test session.
    return dataclasses.replace(settings, admin_token=token, key_prefix=f"test-{secrets.token_hex(4)}")


async def until(condition: Callable[[], bool], *, within_s: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        assert loop.time() - started < within_s, "condition not met in time"
        await asyncio.sleep(0.005)
    return loop.time() - started


async def test_admin_api_is_absent_without_a_token(gateway: Gateway, settings: Settings) -> None:
    client = await gateway(admin(settings, token=None))
    response = await client.post("/admin/orders", json=ORDER, headers=AUTH)
    assert response.status == 404


async def test_admin_api_refuses_a_wrong_or_missing_token(gateway: Gateway, settings: Settings) -> None:
    client = await gateway(admin(settings))
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = await client.post("/admin/orders", json=ORDER, headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    assert (await client.get("/admin/orders")).status == 401


async def test_a_registered_order_is_seen_by_every_gateway_within_a_second(
    gateway: Gateway, settings: Settings
) -> None:
    shared = admin(settings)
    first, second = await gateway(shared), await gateway(shared)
    response = await first.post("/admin/orders", json=ORDER, headers=AUTH)
    assert response.status == 201
    body = await response.json()
    assert body["amount"] == "500" and body["confirmed_at"] is None
    replicas = [client.app[ORDERS] for client in (first, second)]
    waited = await until(lambda: all(r.lookup("uuwallet", "cb-42") is not None for r in replicas), within_s=1.0)
    assert waited < 1.0
    order = replicas[1].lookup("uuwallet", "cb-42")
    assert order is not None and dict(order.extras) == {"tenantUserId": "u-1"}


async def test_register_again_conflict_invalid_and_list(gateway: Gateway, settings: Settings) -> None:
    client = await gateway(admin(settings))
    assert (await client.post("/admin/orders", json=ORDER, headers=AUTH)).status == 201
    assert (await client.post("/admin/orders", json=ORDER, headers=AUTH)).status == 200
    conflict = await client.post("/admin/orders", json={**ORDER, "amount": "501"}, headers=AUTH)
    assert conflict.status == 409
    invalid = await client.post("/admin/orders", json={**ORDER, "amount": 5.5}, headers=AUTH)
    assert invalid.status == 400 and (await invalid.json())["detail"].startswith("amount:")
    not_json = await client.post("/admin/orders", data=b"{", headers=AUTH)
    assert not_json.status == 400
    listed = await client.get("/admin/orders?provider=uuwallet", headers=AUTH)
    assert [o["order_ref"] for o in (await listed.json())["orders"]] == ["cb-42"]
    assert (await client.get("/admin/orders?limit=0", headers=AUTH)).status == 400


async def test_a_published_policy_reaches_every_gateway(
    gateway: Gateway, settings: Settings, db: Pool, redis: Redis
) -> None:
    shared = admin(settings)
    clients = [await gateway(shared), await gateway(shared)]
    assert all(client.app[POLICY].current is None for client in clients)
    text = "rules:\n  - {id: kg, kind: tss, min_threshold: 2}\n"
    await publish(db, redis, RedisKeys(shared.key_prefix), text, published_by="test")

    def loaded() -> bool:
        return all((snapshot := c.app[POLICY].current) is not None and snapshot.version == 1 for c in clients)

    await until(loaded, within_s=2.0)
