"""Gateway: the admin subscribers API on the real app, real Postgres and Redis, and a real receiver
verifying that a rotated secret signs the next delivery."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from callgate.demo import wyre_transaction
from gateway.keys import METRICS
from shared.config import Settings
from shared.notify import subscribers
from tests.conftest import WYRE_TOKEN, RunWorker, sample_value
from tests.gateway.test_admin_orders import AUTH, admin
from tests.receiver import Receiver

Client = TestClient[web.Request, web.Application]
Gateway = Callable[[Settings], Awaitable[Client]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


def _counted(client: Client, route: str, outcome: str) -> float:
    return sample_value(client.app[METRICS], "callgate_admin_requests_total", {"route": route, "outcome": outcome})


def _signatures(secret: str, headers: dict[str, str], body: bytes) -> set[str]:
    """What a Standard Webhooks receiver computes for one secret: the `v1,<base64>` it expects."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return {"v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()}


async def test_create_list_disable_enable_and_secrets_never_listed(gateway: Gateway, settings: Settings) -> None:
    client = await gateway(admin(settings))
    body = {"name": "ledger", "url": "https://ledger.example/hooks", "event_types": ["wyre.*"]}
    created = await client.post("/admin/subscribers", json=body, headers=AUTH)
    assert created.status == 201
    sub = await created.json()
    assert sub["secret"].startswith("whsec_") and sub["enabled"] is True and sub["event_types"] == ["wyre.*"]
    listed = await (await client.get("/admin/subscribers", headers=AUTH)).json()
    assert [s["name"] for s in listed["subscribers"]] == ["ledger"]
    assert listed["subscribers"][0]["breaker"] == "closed"
    assert sub["secret"] not in str(listed) and "secret" not in listed["subscribers"][0]

    disabled = await client.post("/admin/subscribers/ledger/disable", json={"reason": "maintenance"}, headers=AUTH)
    assert disabled.status == 200
    assert (await disabled.json())["enabled"] is False and (await disabled.json())["disabled_reason"] == "maintenance"
    enabled = await client.post("/admin/subscribers/ledger/enable", headers=AUTH)
    assert enabled.status == 200 and (await enabled.json())["enabled"] is True
    assert _counted(client, "admin_subscribers_create", "ok") == 1


async def test_refusals_are_clear_4xx_and_counted(gateway: Gateway, settings: Settings) -> None:
    client = await gateway(admin(settings))
    good = {"name": "ledger", "url": "https://ledger.example/hooks"}
    assert (await client.post("/admin/subscribers", json=good)).status == 401
    cases = [
        (b"{not json", 400, "not JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"name": "ledger", "url": "https://x.example", "evnt_types": []}', 400, "unknown fields"),
        (b'{"name": "has space", "url": "https://x.example"}', 400, "name"),
        (b'{"name": "ledger", "url": "ftp://x.example"}', 400, "url"),
        (b'{"name": "ledger", "url": "https://x.example", "event_types": ["wy*re"]}', 400, "event_types"),
        (b'{"name": "ledger", "url": "https://x.example", "secret": "plain"}', 400, "secret"),
        (b'{"name": 7, "url": "https://x.example"}', 400, "name"),
    ]
    for raw, status, said in cases:
        response = await client.post("/admin/subscribers", data=raw, headers=AUTH)
        assert response.status == status, raw
        assert said in (await response.json())["detail"], raw
    assert (await client.post("/admin/subscribers", json=good, headers=AUTH)).status == 201
    again = await client.post("/admin/subscribers", json=good, headers=AUTH)
    assert again.status == 409 and (await again.json())["error"] == "conflict"
    assert (await client.post("/admin/subscribers/nobody/disable", headers=AUTH)).status == 404
    assert (await client.post("/admin/subscribers/nobody/rotate", headers=AUTH)).status == 404
    bad_overlap = await client.post("/admin/subscribers/ledger/rotate", json={"overlap_hours": -1}, headers=AUTH)
    assert bad_overlap.status == 400
    assert (await client.post("/admin/subscribers/ledger/enable", json={"reason": "x"}, headers=AUTH)).status == 400
    assert _counted(client, "admin_subscribers_create", "invalid") == len(cases)
    assert _counted(client, "admin_subscribers_create", "unauthorized") == 1
    assert _counted(client, "admin_subscribers_create", "conflict") == 1
    assert _counted(client, "admin_subscribers_rotate", "not_found") == 1


async def test_a_rotated_secret_signs_beside_the_old_one(
    gateway: Gateway,
    settings: Settings,
    run_worker: RunWorker,
    receiver: Receiver,
    db: asyncpg.Pool[asyncpg.Record],
) -> None:
    configured = admin(settings)
    client = await gateway(configured)
    body = {"name": "books", "url": receiver.endpoint("books")}
    old = (await (await client.post("/admin/subscribers", json=body, headers=AUTH)).json())["secret"]
    rotated = await client.post("/admin/subscribers/books/rotate", json={"overlap_hours": 1}, headers=AUTH)
    assert rotated.status == 200
    view = await rotated.json()
    new = view["secret"]
    assert new.startswith("whsec_") and new != old and view["previous_secret_expires_at"] is not None
    listed = await (await client.get("/admin/subscribers", headers=AUTH)).text()
    assert new not in listed and old not in listed

    url = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
    assert (await client.post(url, data=wyre_transaction("CONFIRMED", "TR_ROTATE1"))).status == 200
    await run_worker(configured)
    [delivery] = receiver.at("books")
    sent = set(delivery.headers["webhook-signature"].split())
    assert sent == _signatures(new, delivery.headers, delivery.body) | _signatures(old, delivery.headers, delivery.body)


async def test_a_subscriber_the_cli_named_freely_is_reachable_by_its_encoded_name(
    gateway: Gateway, settings: Settings, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await gateway(admin(settings))
    async with db.acquire() as conn:  # `callgate subscribers add` takes any name
        await subscribers.add(conn, "ledger / eu", "https://ledger.example/hooks")
    response = await client.post("/admin/subscribers/ledger%20%2F%20eu/disable", headers=AUTH)
    assert response.status == 200 and (await response.json())["name"] == "ledger / eu"
    assert (await response.json())["enabled"] is False
