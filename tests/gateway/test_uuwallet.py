"""UU Wallet callbacks end to end: gateway → Redis → burst worker → Postgres, and type 2 answers."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis

from callgate.uuwallet_demo import send_uuwallet
from gateway.app import create_app
from gateway.keys import METRICS, ORDERS, POLICY
from shared import rsablocks
from shared.config import Settings, UuWalletSettings
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.order_replica import OrderReplica
from shared.orders import confirm, register
from shared.policy.document import parse_document
from shared.policy.model import ExpectedOrder
from shared.policy.snapshot import PolicySnapshot, compile_snapshot
from shared.providers.uuwallet import ErrCode
from shared.providers.uuwallet_samples import (
    DEPOSIT,
    REQUEST_WITHDRAW,
    WITHDRAW,
    decrypt_as_waas,
    encrypt_as_waas,
    with_new_request_uuid,
)
from tests.conftest import AiohttpClient, RunWorker, sample_value, with_providers

Client = TestClient[web.Request, web.Application]
API_KEYS = ("uu-callback-key-current-0001", "uu-callback-key-previous-002")
# RSA-1024 is what the WaaS issues (§2B); the gateway only ever holds the public half.
WAAS = rsablocks.private_from_crypto(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
OTHER = rsablocks.private_from_crypto(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
HEADERS = {"X-API-KEY": API_KEYS[0], "Content-Type": "application/x-www-form-urlencoded"}
CALLBACK, CONFIRM = "/uuwallet/callback", "/uuwallet/withdraw-info"
POLICY_DOCUMENT: dict[str, Any] = {
    "defaults": {"uuwallet": "REJECT"},
    "lists": {"sanctioned": ["0x000000000000000000000000000000000000dead"]},
    "rules": [
        {"id": "sanctions", "kind": "destinations", "deny_lists": ["sanctioned"]},
        {"id": "registered", "kind": "expected_order", "match": {"provider": "uuwallet", "operation": "withdraw"}},
        {
            "id": "deposit-risk",
            "kind": "deposit_risk",
            "match": {"provider": "uuwallet", "operation": "deposit"},
            "max_risk_level": 60,
        },
    ],
}
ORDER = ExpectedOrder(
    provider="uuwallet",
    order_ref=REQUEST_WITHDRAW["callBackId"],
    chain="TRON",
    asset="USDT",
    destination="TGDHyoMpgDQj4DmoZdwJP2FSkSG4DEchnK",
    amount=Decimal("3.3"),
    expires_at=4_000_000_000.0,
    extras=(("tenantUserId", REQUEST_WITHDRAW["tenantUserId"]),),
)


@dataclass
class FixedPolicy:
    """A published snapshot, as the policy holder exposes it."""

    current: PolicySnapshot | None


@dataclass
class Registry:
    """The real expected-order registry (Postgres + Redis) and the replica the gateway decides with."""

    db: asyncpg.Pool[asyncpg.Record]
    redis: Redis
    keys: RedisKeys
    replica: OrderReplica

    async def add(self, order: ExpectedOrder, *, confirmed: bool = False) -> None:
        await register(self.db, self.redis, self.keys, order)
        if confirmed:
            await confirm(self.redis, self.keys, order.provider, order.order_ref)
        # The orders channel would deliver it within milliseconds; reloading makes the test exact.
        await self.replica.reload("test")


def _snapshot(*, sanctions: bool = True) -> PolicySnapshot:
    rules: list[dict[str, Any]] = POLICY_DOCUMENT["rules"]
    document = {**POLICY_DOCUMENT, "rules": [r for r in rules if sanctions or r["id"] != "sanctions"]}
    return compile_snapshot(parse_document(document), version=3 if sanctions else 4, published_at=1.0, sha256="t")


Start = Callable[..., Awaitable[Client]]


@pytest.fixture
def uu_settings(settings: Settings) -> Settings:
    return with_providers(settings, uuwallet=UuWalletSettings(api_keys=API_KEYS, public_key=WAAS.public))


@pytest.fixture
async def registry(redis: Redis, db: asyncpg.Pool[asyncpg.Record], uu_settings: Settings) -> AsyncIterator[Registry]:
    keys = RedisKeys(uu_settings.key_prefix)
    replica = OrderReplica(redis, keys, pool=db)
    await replica.start()
    yield Registry(db, redis, keys, replica)
    await replica.stop()


@pytest.fixture
async def start(aiohttp_client: AiohttpClient, registry: Registry, uu_settings: Settings) -> AsyncIterator[Start]:
    """Factory: the real gateway with UU Wallet enabled, a policy snapshot and the order replica."""

    async def run(
        settings: Settings | None = None, *, no_policy: bool = False, policy: FixedPolicy | None = None
    ) -> Client:
        app = create_app(settings or uu_settings, metrics=Metrics())
        app[POLICY] = policy or FixedPolicy(None if no_policy else _snapshot())
        app[ORDERS] = registry.replica
        return await aiohttp_client(app)

    yield run


async def _post(client: Client, path: str, payload: Mapping[str, object], **headers: str) -> tuple[int, Any]:
    response = await client.post(path, data=encrypt_as_waas(payload, WAAS), headers={**HEADERS, **headers})
    return response.status, await response.json()


def _data(answer: Mapping[str, Any]) -> Any:
    return decrypt_as_waas(answer["data"], WAAS)


def _count(client: Client, outcome: str) -> float:
    return sample_value(client.app[METRICS], "callgate_callbacks_total", {"provider": "uuwallet", "outcome": outcome})


def _confirmations(client: Client, outcome: str) -> float:
    return sample_value(client.app[METRICS], "callgate_uuwallet_confirmations_total", {"outcome": outcome})


async def _rows(db: asyncpg.Pool[asyncpg.Record]) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT kind, idempotency_key, payload, status, decision, policy_version FROM events ORDER BY id"
    )


# -- notifications ---------------------------------------------------------------------------

SAMPLES: dict[str, Mapping[str, object]] = {
    "deposited": DEPOSIT,
    "withdraw": WITHDRAW,
    "address": {**REQUEST_WITHDRAW, "type": 4, "callBackId": None, "newAddress": "TNewAddress1"},
    "invalid_address": {**REQUEST_WITHDRAW, "type": 5, "toAddress": "TBadAddress"},
    "not_enough_money": {**REQUEST_WITHDRAW, "type": 6},
    "not_enough_hot_money": {**REQUEST_WITHDRAW, "type": 7},
}


async def test_each_type_is_acknowledged_with_an_encrypted_echo_and_stored(
    start: Start, uu_settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await start()
    for payload in SAMPLES.values():
        status, answer = await _post(client, CALLBACK, payload)
        assert (status, answer["errCode"], answer["message"]) == (200, 0, "")
        assert _data(answer) == {
            "requestUUID": payload["requestUUID"],
            "tenantUserId": payload["tenantUserId"],
            "type": payload["type"],
            "trackingId": payload["trackingId"],
            "callBackId": payload.get("callBackId"),
        }
    await run_worker(uu_settings)
    rows = await _rows(db)
    assert [r["kind"] for r in rows] == list(SAMPLES)
    assert rows[0]["payload"]["amount"] == "2.500000000000"
    assert rows[1]["idempotency_key"] == f"withdraw:{WITHDRAW['txId']}"
    assert rows[2]["payload"]["newAddress"] == "TNewAddress1"
    assert _count(client, "accepted") == len(SAMPLES)


async def test_a_retried_deposit_with_a_new_request_uuid_is_a_duplicate(
    start: Start, uu_settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await start()
    first = await _post(client, CALLBACK, DEPOSIT)
    retry = with_new_request_uuid(DEPOSIT)
    second = await _post(client, CALLBACK, retry)
    assert first[1]["errCode"] == second[1]["errCode"] == 0
    # The duplicate is answered success, echoing *its own* requestUUID.
    assert _data(second[1])["requestUUID"] == retry["requestUUID"]
    other_address = with_new_request_uuid(DEPOSIT, toAddress="TOtherDepositAddress9")
    assert (await _post(client, CALLBACK, other_address))[1]["errCode"] == 0
    await run_worker(uu_settings)
    rows = await _rows(db)
    assert [r["payload"]["toAddress"] for r in rows] == [DEPOSIT["toAddress"], "TOtherDepositAddress9"]
    assert (_count(client, "accepted"), _count(client, "duplicate")) == (2, 1)


async def test_a_retried_withdrawal_result_is_a_duplicate_by_tx_id(
    start: Start, uu_settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await start()
    await _post(client, CALLBACK, WITHDRAW)
    await _post(client, CALLBACK, with_new_request_uuid(WITHDRAW, trackingId="999999"))
    await run_worker(uu_settings)
    assert len(await _rows(db)) == 1
    assert _count(client, "duplicate") == 1


async def test_concurrent_duplicates_make_one_event(
    start: Start, uu_settings: Settings, run_worker: RunWorker, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await start()
    answers = await asyncio.gather(*(_post(client, CALLBACK, with_new_request_uuid(DEPOSIT)) for _ in range(30)))
    assert {(status, answer["errCode"]) for status, answer in answers} == {(200, 0)}
    assert (_count(client, "accepted"), _count(client, "duplicate")) == (1, 29)
    assert await redis.zcard(uu_settings.queue_name) == 1
    await run_worker(uu_settings)
    assert len(await _rows(db)) == 1


async def test_risky_deposits_are_stored_flagged_and_held(
    start: Start, uu_settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await start()
    await _post(client, CALLBACK, DEPOSIT)  # risk 3
    risky = with_new_request_uuid(DEPOSIT, txId="ab" * 32, riskLevelFrom=85)
    status, answer = await _post(client, CALLBACK, risky)
    assert (status, answer["errCode"]) == (200, 0)  # held is still received: the WaaS must stop retrying
    await _post(client, CALLBACK, with_new_request_uuid(risky))  # a retry is not held twice
    await run_worker(uu_settings)
    rows = await _rows(db)
    assert [r["status"] for r in rows] == ["received", "held"]
    assert rows[0]["decision"]["action"] == "APPROVE" and rows[0]["policy_version"] == 3
    assert [r["code"] for r in rows[1]["decision"]["reasons"]] == ["risk_level_over_threshold"]
    assert sample_value(client.app[METRICS], "callgate_uuwallet_deposits_held_total") == 1
    labels = {"provider": "uuwallet", "request_type": "deposited", "action": "REJECT"}
    assert (
        sample_value(client.app[METRICS], "callgate_decisions_total", {**labels, "reason": "risk_level_over_threshold"})
        == 2
    )


async def test_without_a_policy_deposits_are_held(
    start: Start, uu_settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    client = await start(no_policy=True)
    await _post(client, CALLBACK, DEPOSIT)
    await run_worker(uu_settings)
    (row,) = await _rows(db)
    assert row["status"] == "held" and row["policy_version"] is None


async def test_type_0_is_acknowledged_and_not_processed(start: Start, redis: Redis, uu_settings: Settings) -> None:
    client = await start()
    status, answer = await _post(client, CALLBACK, {"type": 0, "requestUUID": "u-0", "tenantUserId": "1"})
    assert (status, answer["errCode"]) == (200, 0)
    assert await redis.zcard(uu_settings.queue_name) == 0
    assert _count(client, "ignored") == 1


@pytest.mark.parametrize("headers", [{"X-API-KEY": "wrong-key-wrong-key-wrong"}, {"X-API-KEY": ""}, {}])
async def test_missing_or_wrong_api_key_is_401(
    start: Start, redis: Redis, uu_settings: Settings, headers: dict[str, str]
) -> None:
    client = await start()
    body = encrypt_as_waas(DEPOSIT, WAAS)
    response = await client.post(
        CALLBACK, data=body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
    )
    assert response.status == 401
    assert (await response.json())["errCode"] != 0
    assert await redis.zcard(uu_settings.queue_name) == 0
    assert _count(client, "unauthorized") == 1


async def test_every_rotation_key_is_accepted(start: Start) -> None:
    client = await start()
    for key in API_KEYS:
        status, answer = await _post(client, CALLBACK, with_new_request_uuid(DEPOSIT), **{"X-API-KEY": key})
        assert (status, answer["errCode"]) == (200, 0)


def _cut(body: bytes) -> bytes:
    return body[: len(body) // 2]


@pytest.mark.parametrize(
    "make_body",
    [
        lambda: b"this is not base64 ciphertext!",
        lambda: _cut(encrypt_as_waas(DEPOSIT, WAAS)),
        lambda: encrypt_as_waas(DEPOSIT, OTHER),  # made with another private key
        lambda: base64.b64encode(rsablocks.private_encrypt(WAAS, b"<xml>not json</xml>")),
        lambda: encrypt_as_waas({**DEPOSIT, "riskLevelTo": 101}, WAAS),
        lambda: b"",
    ],
)
async def test_undecryptable_or_invalid_bodies_are_refused_and_not_enqueued(
    start: Start, redis: Redis, uu_settings: Settings, make_body: Callable[[], bytes]
) -> None:
    client = await start()
    response = await client.post(CALLBACK, data=make_body(), headers=HEADERS)
    answer = await response.json()
    assert response.status == 400
    assert answer["errCode"] == 4000 and answer["message"]  # non-zero: the WaaS keeps the event
    assert await redis.zcard(uu_settings.queue_name) == 0
    assert _count(client, "invalid") == 1


async def test_the_data_form_field_is_accepted(start: Start) -> None:
    client = await start()
    body = b"data=" + encrypt_as_waas(DEPOSIT, WAAS)
    response = await client.post(CALLBACK, data=body, headers=HEADERS)
    assert (await response.json())["errCode"] == 0


async def test_an_oversized_body_is_413(start: Start, uu_settings: Settings, redis: Redis) -> None:
    config = uu_settings.providers.uuwallet
    assert config is not None
    client = await start()
    big = encrypt_as_waas({**DEPOSIT, "padding": "x" * config.max_body_bytes}, WAAS)
    response = await client.post(CALLBACK, data=big, headers=HEADERS)
    assert response.status == 413
    assert (await response.json())["errCode"] != 0
    # Over the gateway's own cap too: still UU Wallet's envelope (nothing to echo), not our JSON error.
    over_the_gateway_cap = b"A" * (uu_settings.max_body_bytes + 1)
    for path in (CALLBACK, CONFIRM):
        response = await client.post(path, data=over_the_gateway_cap, headers=HEADERS)
        assert response.status == 413
        assert await response.json() == {"errCode": ErrCode.INVALID, "message": "body too large", "data": ""}
    assert _count(client, "too_large") == 3
    assert await redis.zcard(uu_settings.queue_name) == 0


async def test_queue_unavailable_is_a_non_zero_err_code(start: Start, uu_settings: Settings, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the spool cannot be a folder under a file")
    broken = dataclasses.replace(uu_settings, redis_url="redis://127.0.0.1:1/0", spool_dir=str(blocker / "spool"))
    client = await start(broken)
    status, answer = await _post(client, CALLBACK, DEPOSIT)
    assert (status, answer["errCode"]) == (503, 5030)
    assert _data(answer)["requestUUID"] == DEPOSIT["requestUUID"]
    assert _count(client, "unavailable") == 1


async def test_type_2_on_the_notification_url_is_refused(start: Start) -> None:
    client = await start()
    status, answer = await _post(client, CALLBACK, REQUEST_WITHDRAW)
    assert (status, answer["errCode"]) == (400, 4000)


# -- withdrawal second confirmation ----------------------------------------------------------


async def test_a_registered_order_is_confirmed_with_its_own_details(
    start: Start, registry: Registry, uu_settings: Settings, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    await registry.add(ORDER)
    client = await start()
    # Whatever the request claims, the answer is the registered order.
    status, answer = await _post(client, CONFIRM, {**REQUEST_WITHDRAW, "address": "TAttacker", "amount": "9999"})
    assert (status, answer["errCode"], answer["message"]) == (200, 0, "")
    assert _data(answer) == {
        "tenantUserId": "bbxuzbc",
        "callBackId": "D611657466",
        "address": ORDER.destination,
        "chainName": "TRON",
        "symbol": "USDT",
        "amount": "3.3",
        "type": 2,
        "requestUUID": REQUEST_WITHDRAW["requestUUID"],
    }
    confirmed = registry.replica.lookup("uuwallet", ORDER.order_ref)
    assert confirmed is not None and confirmed.confirmed
    assert not await confirm(registry.redis, registry.keys, "uuwallet", ORDER.order_ref)  # consumed in Redis
    await run_worker(uu_settings)
    (row,) = await _rows(db)
    assert (row["kind"], row["status"], row["policy_version"]) == ("request_withdraw", "approved", 3)
    assert _confirmations(client, "approved") == 1


async def test_a_retried_confirmation_gets_the_first_answer(start: Start, registry: Registry) -> None:
    await registry.add(ORDER)
    client = await start()
    first = await _post(client, CONFIRM, REQUEST_WITHDRAW)
    retry = with_new_request_uuid(REQUEST_WITHDRAW)
    second = await _post(client, CONFIRM, retry)  # the order is confirmed by now
    assert first[1]["errCode"] == second[1]["errCode"] == 0
    assert _data(second[1]) == {**_data(first[1]), "requestUUID": retry["requestUUID"]}
    assert (_confirmations(client, "approved"), _confirmations(client, "replay")) == (1, 1)


async def test_concurrent_confirmations_answer_alike_and_confirm_once(start: Start, registry: Registry) -> None:
    await registry.add(ORDER)
    client = await start()
    answers = await asyncio.gather(
        *(_post(client, CONFIRM, with_new_request_uuid(REQUEST_WITHDRAW)) for _ in range(20))
    )
    datas = [_data(answer) for _, answer in answers]
    assert {answer["errCode"] for _, answer in answers} == {0}
    assert len({(d["address"], d["amount"], d["callBackId"]) for d in datas}) == 1
    assert _confirmations(client, "approved") == 1
    assert _confirmations(client, "replay") == 19


@pytest.mark.parametrize(
    ("order", "confirmed", "outcome"),
    [
        (replace(ORDER, order_ref="D-someone-elses"), False, "unknown_order"),
        (replace(ORDER, expires_at=1.0), False, "order_expired"),
        (ORDER, True, "order_already_confirmed"),
        (replace(ORDER, extras=(("tenantUserId", "someone-else"),)), False, "tenant_mismatch"),
        (replace(ORDER, extras=()), False, "order_without_tenant"),
    ],
)
async def test_confirmation_is_refused_without_a_usable_order(
    start: Start,
    registry: Registry,
    redis: Redis,
    uu_settings: Settings,
    order: ExpectedOrder,
    confirmed: bool,
    outcome: str,
) -> None:
    await registry.add(order, confirmed=confirmed)
    client = await start()
    status, answer = await _post(client, CONFIRM, REQUEST_WITHDRAW)
    assert (status, answer["errCode"], answer["message"]) == (200, 4030, outcome)
    # The refusal echoes the request; it hands out no order details.
    assert set(_data(answer)) == {"requestUUID", "tenantUserId", "type", "trackingId", "callBackId"}
    assert _confirmations(client, outcome) == 1
    assert await redis.zcard(uu_settings.queue_name) == 0  # refusals of this kind are not memoised


async def test_a_late_registered_order_is_confirmed_on_the_retry(start: Start, registry: Registry) -> None:
    client = await start()
    assert (await _post(client, CONFIRM, REQUEST_WITHDRAW))[1]["errCode"] == 4030
    await registry.add(ORDER)
    assert (await _post(client, CONFIRM, with_new_request_uuid(REQUEST_WITHDRAW)))[1]["errCode"] == 0


async def test_a_policy_rejection_is_memoised(start: Start, registry: Registry) -> None:
    await registry.add(replace(ORDER, destination="0x000000000000000000000000000000000000dead"))
    policy = FixedPolicy(_snapshot())
    client = await start(policy=policy)
    first = await _post(client, CONFIRM, REQUEST_WITHDRAW)
    assert first[1]["errCode"] == 4030 and "destination" in first[1]["message"]
    # A policy published later without the deny list does not change the answer to this callBackId.
    policy.current = _snapshot(sanctions=False)
    second = await _post(client, CONFIRM, with_new_request_uuid(REQUEST_WITHDRAW))
    assert (second[1]["errCode"], second[1]["message"]) == (4030, first[1]["message"])
    assert (_confirmations(client, "rejected"), _confirmations(client, "replay")) == (1, 1)
    not_confirmed = registry.replica.lookup("uuwallet", ORDER.order_ref)
    assert not_confirmed is not None and not not_confirmed.confirmed


async def test_no_policy_refuses_without_memoising(start: Start, registry: Registry) -> None:
    await registry.add(ORDER)
    client = await start(no_policy=True)
    status, answer = await _post(client, CONFIRM, REQUEST_WITHDRAW)
    assert (status, answer["errCode"], answer["message"]) == (200, 4030, "no_policy")
    assert _confirmations(client, "no_policy") == 1


async def test_confirmation_with_redis_down_is_unavailable(start: Start, uu_settings: Settings, tmp_path: Path) -> None:
    broken = dataclasses.replace(uu_settings, redis_url="redis://127.0.0.1:1/0")
    client = await start(broken)
    status, answer = await _post(client, CONFIRM, REQUEST_WITHDRAW)
    assert (status, answer["errCode"]) == (503, 5030)
    assert _confirmations(client, "unavailable") == 1


async def test_notifications_on_the_confirmation_url_are_refused(start: Start) -> None:
    client = await start()
    status, answer = await _post(client, CONFIRM, DEPOSIT)
    assert (status, answer["errCode"]) == (400, 4000)


# -- callgate demo ---------------------------------------------------------------------------


def _err_code(line: str) -> str:
    found = re.search(r"errCode=(\d+)", line)
    return found[1] if found else ""


async def test_the_demo_plays_the_waas(
    aiohttp_client: AiohttpClient, redis: Redis, db: asyncpg.Pool[asyncpg.Record], uu_settings: Settings, tmp_path: Path
) -> None:
    key_file = tmp_path / "waas-test.pem"
    key_file.write_bytes(
        rsa.RSAPrivateNumbers(
            p=WAAS.p,
            q=WAAS.q,
            d=WAAS.d,
            dmp1=WAAS.dp,
            dmq1=WAAS.dq,
            iqmp=WAAS.qinv,
            public_numbers=rsa.RSAPublicNumbers(e=WAAS.public.e, n=WAAS.public.n),
        )
        .private_key()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    config = uu_settings.providers.uuwallet
    assert config is not None
    settings = with_providers(uu_settings, uuwallet=replace(config, demo_private_key_file=str(key_file)))
    client = await aiohttp_client(create_app(settings, metrics=Metrics()))
    async with aiohttp.ClientSession() as session:
        lines = await send_uuwallet(settings, session, str(client.make_url("")).rstrip("/"))
    assert [line.split(":")[0] for line in lines] == [
        f"uuwallet {label}"
        for label in (
            "undecryptable body",
            "bad key",
            "deposit",
            "deposit retried",
            "withdrawal result",
            "type 0",
            "second confirmation",
        )
    ]
    assert [_err_code(line) for line in lines] == ["4000", "4000", "0", "0", "0", "0", _err_code(lines[6])]
    assert " 401 " in lines[1]
    # The order was registered for real; whether it is approved is the policy's business.
    assert _err_code(lines[6]) in ("0", "4030")
    assert _count(client, "accepted") == 2 and _count(client, "duplicate") == 1


async def test_the_demo_without_a_private_key_sends_only_refusals(
    aiohttp_client: AiohttpClient, redis: Redis, db: asyncpg.Pool[asyncpg.Record], uu_settings: Settings
) -> None:
    client = await aiohttp_client(create_app(uu_settings, metrics=Metrics()))
    async with aiohttp.ClientSession() as session:
        lines = await send_uuwallet(uu_settings, session, str(client.make_url("")).rstrip("/"))
    assert len(lines) == 3 and "CALLGATE_UUWALLET_DEMO_PRIVATE_KEY_FILE" in lines[2]


@pytest.mark.parametrize(
    "plaintext",
    [
        b"[]",
        b'"a string"',
        b"null",
        b'{"type": "' + b"1" * 5000 + b'"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"type": 1, "amount": 1e999999}',
        b'{"type": 1, "amount": ' + b"9" * 5000 + b"}",
        b'{"type": NaN}',
        b"\xff\xfe not utf-8",
        b'{"type": 1, "type": 3}',
    ],
)
async def test_hostile_plaintexts_under_a_valid_encryption_are_refused_never_500(
    start: Start, redis: Redis, uu_settings: Settings, plaintext: bytes
) -> None:
    client = await start()
    body = base64.b64encode(rsablocks.private_encrypt(WAAS, plaintext))
    response = await client.post(CALLBACK, data=body, headers=HEADERS)
    assert response.status == 400
    assert (await response.json())["errCode"] == 4000
    assert await redis.zcard(uu_settings.queue_name) == 0
