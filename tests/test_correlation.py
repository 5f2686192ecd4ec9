"""One correlation id from the gateway through the worker to the downstream notification, and no
secret or raw ciphertext in any log line on the way.

Real gateway (Cobo TSS, Wyre with a signing secret, UU Wallet), real Redis and Postgres, a real
worker and a real receiver; every log record of the run is formatted by the production JSON
formatter. A successful callback writes no gateway log line (the access log is off in
production, and it would carry the Wyre path token), so the gateway's own line comes from the
flow that has one: a Cobo TSS request_id reused with other content, refused and recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from redis.asyncio import Redis

from callgate.demo import wyre_transaction
from gateway.app import create_app
from gateway.keys import POLICY
from shared.config import CoboTssSettings, Settings, UuWalletSettings, WyreSettings
from shared.db import Pool
from shared.logging import JsonFormatter
from shared.metrics import Metrics
from shared.providers import cobo_tss_samples as samples
from shared.providers.uuwallet_samples import DEPOSIT, encrypt_as_waas
from tests.conftest import WYRE_TOKEN, AiohttpClient, RunWorker, with_providers
from tests.gateway.test_admin_orders import AUTH, TOKEN, admin
from tests.gateway.test_admin_subscribers import receiver
from tests.gateway.test_cobo_tss import CHECK, NODE, OURS, RULES, Holder, policy
from tests.gateway.test_uuwallet import API_KEYS, WAAS
from tests.receiver import Receiver

Client = TestClient[web.Request, web.Application]
WYRE_SECRET = "wyre-signing-" + base64.b16encode(hashlib.sha256(b"t").digest()[:8]).decode()
__all__ = ["receiver"]  # the fixture


class Lines(logging.Handler):
    """Every record, as the production JSON formatter writes it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.lines]


@pytest.fixture
def lines() -> Iterator[Lines]:
    root, access = logging.getLogger(), logging.getLogger("aiohttp.access")
    handler, levels = Lines(), (root.level, access.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    access.setLevel(logging.WARNING)  # as shared.logging.configure leaves it
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        access.setLevel(levels[1])


@pytest.fixture
async def gateway(
    aiohttp_client: AiohttpClient, settings: Settings, redis: Redis, db: Pool
) -> AsyncIterator[tuple[Client, Settings]]:
    """The real gateway with three providers, on an emptied Redis database and Postgres (as the
    shared `gateway` fixture this one replaces): nothing left over from other tests is delivered."""
    configured = with_providers(
        admin(settings),
        wyre=WyreSettings(path_token=WYRE_TOKEN, signing_secret=WYRE_SECRET),
        cobo_tss=CoboTssSettings(node_public_key=NODE.public_key(), private_key=OURS),
        uuwallet=UuWalletSettings(api_keys=API_KEYS, public_key=WAAS.public),
    )
    app = create_app(configured, metrics=Metrics())
    app[POLICY] = Holder(policy(1, RULES))
    yield await aiohttp_client(app), configured


async def _sent(client: Client, path: str, expect: str, **kwargs: Any) -> str:
    response = await client.post(path, **kwargs)
    assert response.status == 200, await response.text()
    assert expect in await response.text()
    return response.headers["X-Request-Id"]


async def test_one_id_from_gateway_to_worker_to_notification_and_no_secret_logged(
    gateway: tuple[Client, Settings], run_worker: RunWorker, receiver: Receiver, lines: Lines
) -> None:
    client, settings = gateway
    receiver.behave("gone", status=410)  # its deliveries write a line (the subscriber is disabled)
    secrets_shown = []
    for name in ("gone", "ledger"):
        body = {"name": name, "url": receiver.endpoint(name)}
        created = await client.post("/admin/subscribers", json=body, headers=AUTH)
        secrets_shown.append((await created.json())["secret"])

    approve = samples.request_token(samples.keysign("rp-corr", amount="1.5"), NODE)
    other = samples.keysign(
        "rp-corr", raw_tx=samples.evm_transfer_tx(to="0x" + "77" * 20), destination="0x" + "77" * 20
    )
    replayed = samples.request_token(other, NODE)
    first = await _sent(client, CHECK, "", data={"TSS_JWT_MSG": approve})
    replay = await _sent(client, CHECK, "", data={"TSS_JWT_MSG": replayed})
    wyre_body = wyre_transaction("CONFIRMED", "TR_CORRELATE1")
    signature = hmac.new(WYRE_SECRET.encode(), wyre_body, hashlib.sha256).hexdigest()
    wyre = await _sent(
        client,
        f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}",
        "accepted",
        data=wyre_body,
        headers={"X-Api-Signature": signature},
    )
    ciphertext = encrypt_as_waas(DEPOSIT, WAAS)
    uu_headers = {"X-API-KEY": API_KEYS[0], "Content-Type": "application/x-www-form-urlencoded"}
    uu = await _sent(client, "/uuwallet/callback", "errCode", data=ciphertext, headers=uu_headers)
    await run_worker(settings)

    sent = {first, replay, wyre, uu}
    assert len(sent) == 4
    records = lines.parsed()
    by_id = {rid: [r for r in records if r.get("correlation_id") == rid] for rid in sent}

    # The gateway's own line about the replay carries that request's id.
    [refusal] = [r for r in by_id[replay] if r["logger"] == "gateway.handlers.cobo_tss"]
    assert "reused with different content" in refusal["msg"]
    # Every callback's worker lines carry its id: the stored event says which request it was.
    for rid in sent:
        stored = [r for r in by_id[rid] if r["logger"] == "workers.store"]
        assert stored and all(rid in r["msg"] for r in stored), (rid, by_id[rid])
    # Each delivery to the subscriber that answered 410 logged under the id of the event it carried.
    gone = [r for r in records if r["logger"] == "workers.deliver" and "410" in r["msg"]]
    carried = {orjson.loads(n.body)["data"]["request_id"] for n in receiver.at("gone")}
    assert gone and {r.get("correlation_id") for r in gone} == carried <= sent
    # Downstream, each notification names the request it came from.
    assert {orjson.loads(n.body)["data"]["request_id"] for n in receiver.at("ledger")} == sent
    # No line written during the run carries an id that is not one of these requests'.
    assert {r["correlation_id"] for r in records if "correlation_id" in r} <= sent | _admin_ids(records)

    forbidden = {
        "admin token": TOKEN,
        "wyre path token": WYRE_TOKEN,
        "wyre signing secret": WYRE_SECRET,
        "wyre signature": signature,
        "uu wallet api key": API_KEYS[0],
        "uu wallet ciphertext": ciphertext.decode()[:64],
        "tss request token": approve.split(".")[2][:40],
        "tss replayed token": replayed.split(".")[2][:40],
        "our signing key": _private_key_fragment(),
        **{f"subscriber secret {i}": s.removeprefix("whsec_") for i, s in enumerate(secrets_shown)},
    }
    leaks = {what: line for what, value in forbidden.items() for line in lines.lines if value in line}
    assert leaks == {}
    assert len(lines.lines) > 5


def _admin_ids(records: list[dict[str, Any]]) -> set[str]:
    """The ids of the admin API requests that created the subscribers (their own lines)."""
    return {r["correlation_id"] for r in records if r["logger"].startswith("gateway.handlers.admin")}


def _private_key_fragment() -> str:
    pem = OURS.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode().splitlines()[5]
