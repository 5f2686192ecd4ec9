"""ChainUp end to end: co-signer approvals and WaaS V2 notifications through the real gateway,
real Redis, a burst worker and Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import cache
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

from callgate.chainup_demo import send_chainup_cosigner, send_chainup_waas
from gateway.app import create_app
from gateway.keys import METRICS, ORDERS, POLICY
from shared import rsablocks
from shared.config import ChainupCosignerSettings, ChainupWaasSettings, Settings
from shared.evm import erc20_calldata
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.orders import register
from shared.policy.document import parse_document
from shared.policy.model import ExpectedOrder
from shared.policy.snapshot import PolicySnapshot, compile_snapshot
from shared.providers import chainup_samples as samples
from shared.providers.chainup_cosigner import public_key_hash
from tests.conftest import AiohttpClient, RunWorker, sample_value, with_providers
from tests.gateway.test_cobo_tss import Holder  # the stand-in for the production policy holder

Client = TestClient[web.Request, web.Application]
WITHDRAW, WEB3 = "/chainup/cosigner/withdraw", "/chainup/cosigner/web3"
NOTIFY, CONFIRM = "/chainup/waas/notify", "/chainup/waas/withdraw-confirm"
TOKEN = "cosigner-" + secrets.token_hex(12)
APP_ID = "app-" + secrets.token_hex(4)
OTHER_ROUTER = "0x1111111111111111111111111111111111111111"

RULES: list[dict[str, Any]] = [
    {"id": "sanctions", "kind": "destinations", "deny": ["0x000000000000000000000000000000000000dEaD"]},
    # ChainUp's USDTERC20 is chain ETH, asset USDT, for co-signer withdrawals and WaaS confirmations.
    {"id": "usdt-limit", "kind": "amount_limit", "match": {"provider": ["chainup_cosigner", "chainup_waas"],
     "chain": "ETH", "asset": "USDT"}, "max_amount": "1000"},
    {"id": "web3", "kind": "contracts", "match": {"provider": "chainup_cosigner", "operation": "web3"},
     "allow": [samples.USDT_ROUTER, OTHER_ROUTER], "unlimited_approval": [samples.USDT_ROUTER]},
    {"id": "one-speed-up", "kind": "speed_up", "match": {"provider": "chainup_cosigner"}, "max_rounds": 1},
]  # fmt: skip


def policy(version: int, rules: list[dict[str, Any]] = RULES) -> PolicySnapshot:
    document = parse_document({"rules": rules, "defaults": {"*": "REJECT"}})
    return compile_snapshot(document, version=version, published_at=time.time(), sha256="test")


@cache
def _key(which: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def chainup_key() -> rsablocks.RsaPrivate:
    return rsablocks.private_from_crypto(_key(0))


def merchant_key() -> rsablocks.RsaPrivate:
    return rsablocks.private_from_crypto(_key(1))


def _pem(which: int) -> str:
    public = _key(which).public_key()
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclasses.dataclass
class Harness:
    client: Client
    holder: Holder
    settings: Settings

    async def cosigner(self, path: str, body: bytes, **headers: str) -> tuple[int, str]:
        response = await self.client.post(path, data=body, headers={"X-Callgate-Token": TOKEN, **headers})
        return response.status, await response.text()

    async def waas(self, path: str, payload: object, *, app_id: str = APP_ID, **kw: Any) -> tuple[int, str]:
        data = payload if isinstance(payload, str) else samples.encrypt_as_chainup(payload, chainup_key(), **kw)  # type: ignore[arg-type]
        response = await self.client.post(
            path, data=samples.waas_form(app_id, data), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        return response.status, await response.text()

    def metric(self, name: str, labels: dict[str, str]) -> float:
        return sample_value(self.client.app[METRICS], name, labels)

    def outcome(self, provider: str, outcome: str) -> float:
        return self.metric("callgate_callbacks_total", {"provider": provider, "outcome": outcome})


Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
def chainup(aiohttp_client: AiohttpClient, redis: Redis, db: asyncpg.Pool[asyncpg.Record], settings: Settings) -> Start:
    async def start(
        *,
        snapshot: PolicySnapshot | None = None,
        no_policy: bool = False,
        merchant: bool = True,
        **cosigner: Any,
    ) -> Harness:
        config = ChainupCosignerSettings(
            **{
                "token": TOKEN,
                "app_id": APP_ID,
                "client_system_public_key_pem": _pem(1),
                **cosigner,
            }
        )
        waas = ChainupWaasSettings(
            app_id=APP_ID,
            public_key=chainup_key().public,
            merchant_private_key=merchant_key() if merchant else None,
        )
        chainup_settings = with_providers(settings, chainup_cosigner=config, chainup_waas=waas)
        app = create_app(chainup_settings, metrics=Metrics())
        holder = Holder(None if no_policy else (snapshot or policy(1)))
        app[POLICY] = holder
        return Harness(await aiohttp_client(app), holder, chainup_settings)

    return start


async def rows(db: asyncpg.Pool[asyncpg.Record]) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT provider, kind, idempotency_key, status, decision, policy_version, payload FROM events ORDER BY id"
    )


# -- co-signer -------------------------------------------------------------------------------


async def test_sign_start_within_limits_is_approved_once_and_audited(
    chainup: Start, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    h = await chainup()
    body = samples.cosigner_body(samples.COSIGNER_WITHDRAW)
    assert [await h.cosigner(WITHDRAW, body) for _ in range(3)] == [(200, "SUCCESS")] * 3
    await run_worker(h.settings)
    (row,) = await rows(db)
    assert (row["provider"], row["kind"], row["status"], row["policy_version"]) == (
        "chainup_cosigner",
        "withdraw.sign_start",
        "approve",
        1,
    )
    assert row["idempotency_key"] == "withdraw:sign_start:unique_request_id:regular"
    assert row["decision"]["reasons"] == [{"code": "allowed", "rule": "usdt-limit", "detail": ""}]
    assert row["payload"]["amount"] == "100.5"
    assert h.outcome("chainup_cosigner", "approved") == 3


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"amount": "1000.000001"}, "amount_over_limit"),
        ({"to": "0x000000000000000000000000000000000000DEAD"}, "destination_denied"),
        ({"symbol": "BTC", "to": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"}, "no_rule"),
    ],
)
async def test_sign_start_outside_the_policy_is_refused(chainup: Start, changes: dict[str, str], code: str) -> None:
    h = await chainup()
    body = samples.cosigner_body(samples.COSIGNER_WITHDRAW, request_id=f"r-{code}", **changes)
    assert await h.cosigner(WITHDRAW, body) == (200, "FAILURE")
    decisions = h.client.app[METRICS].decisions
    assert any(s.labels.get("action") == "REJECT" and s.value == 1 for m in decisions.collect() for s in m.samples)


async def test_cosigner_limits_apply_by_chain_and_asset(chainup: Start) -> None:
    """A limit on (TRX, USDT) holds USDTTRC20 withdrawals, and not USDTERC20 ones (ETH, USDT)."""
    tron = {"id": "tron-usdt", "kind": "amount_limit", "match": {"chain": "TRX", "asset": "USDT"}, "max_amount": "50"}
    h = await chainup(snapshot=policy(1, [*RULES, tron]))
    tron_address = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE"
    for request_id, symbol, amount, to, answer in [
        ("trc-1", "USDTTRC20", "50", tron_address, "SUCCESS"),
        ("trc-2", "USDTTRC20", "50.01", tron_address, "FAILURE"),
        ("erc-1", "USDTERC20", "999", samples.TREASURY, "SUCCESS"),  # usdt-limit, not the Tron one
        ("trx-1", "TRX", "1", tron_address, "FAILURE"),  # the native coin: no rule covers (TRX, TRX)
    ]:
        changes = {"request_id": request_id, "symbol": symbol, "amount": amount, "to": to}
        body = samples.cosigner_body(samples.COSIGNER_WITHDRAW, **changes)
        assert await h.cosigner(WITHDRAW, body) == (200, answer), request_id


async def test_unlimited_approval_only_for_the_listed_contract(chainup: Start) -> None:
    h = await chainup()
    unlimited = samples.cosigner_body(samples.COSIGNER_WEB3, amount="-1")
    assert await h.cosigner(WEB3, unlimited) == (200, "SUCCESS")
    elsewhere = samples.cosigner_body(
        samples.COSIGNER_WEB3, request_id="r-2", amount=-1, to=OTHER_ROUTER, interactive_contract=OTHER_ROUTER
    )
    assert await h.cosigner(WEB3, elsewhere) == (200, "FAILURE")
    plain = samples.cosigner_body(
        samples.COSIGNER_WEB3, request_id="r-3", to=OTHER_ROUTER, interactive_contract=OTHER_ROUTER
    )
    assert await h.cosigner(WEB3, plain) == (200, "SUCCESS")


async def test_erc20_calldata_is_judged_not_the_descriptive_fields(chainup: Start) -> None:
    h = await chainup()
    dead = "0x000000000000000000000000000000000000dead"
    # "0 to the allowed router", but the calldata pays a denied address / approves everything.
    for i, (method, amount) in enumerate((("transfer", 10**6), ("approve", 2**256 - 1))):
        data = "0x" + erc20_calldata(method, dead, amount).hex()
        body = samples.cosigner_body(samples.COSIGNER_WEB3, request_id=f"calldata-{i}", input_data=data)
        assert await h.cosigner(WEB3, body) == (200, "FAILURE")
    fine = "0x" + erc20_calldata("approve", samples.USDT_ROUTER, 10**6).hex()
    body = samples.cosigner_body(samples.COSIGNER_WEB3, request_id="calldata-ok", input_data=fine)
    assert await h.cosigner(WEB3, body) == (200, "SUCCESS")


async def test_a_speed_up_round_gets_its_own_decision(chainup: Start) -> None:
    h = await chainup(snapshot=policy(1, [*RULES[:3], {**RULES[3], "max_rounds": 0}]))
    regular = samples.cosigner_body(samples.COSIGNER_WITHDRAW)
    speed_up = samples.cosigner_body(samples.COSIGNER_WITHDRAW, pending_round=True)
    assert await h.cosigner(WITHDRAW, regular) == (200, "SUCCESS")
    assert await h.cosigner(WITHDRAW, speed_up) == (200, "FAILURE")
    assert await h.cosigner(WITHDRAW, regular) == (200, "SUCCESS")  # the regular answer stands


async def test_a_speed_up_round_with_other_content_is_a_replay(chainup: Start) -> None:
    h = await chainup()
    assert await h.cosigner(WITHDRAW, samples.cosigner_body(samples.COSIGNER_WITHDRAW)) == (200, "SUCCESS")
    same = samples.cosigner_body(samples.COSIGNER_WITHDRAW, pending_round=True)
    other = samples.cosigner_body(samples.COSIGNER_WITHDRAW, request_id="x", pending_round=True)
    drifted = samples.cosigner_body(samples.COSIGNER_WITHDRAW, pending_round=True, amount="99")
    assert await h.cosigner(WITHDRAW, drifted) == (200, "FAILURE")
    assert h.metric("callgate_decision_replays_total", {"provider": "chainup_cosigner"}) == 1
    assert await h.cosigner(WITHDRAW, same) == (200, "SUCCESS")
    assert await h.cosigner(WITHDRAW, other) == (200, "SUCCESS")  # a speed-up of an unseen round: judged alone


async def test_same_question_same_answer_after_a_policy_change_and_replays_refused(
    chainup: Start, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    h = await chainup()
    body = samples.cosigner_body(samples.COSIGNER_WITHDRAW)
    assert await h.cosigner(WITHDRAW, body) == (200, "SUCCESS")
    h.holder.current = policy(2, [{**RULES[1], "max_amount": "1"}])
    assert await h.cosigner(WITHDRAW, body) == (200, "SUCCESS")
    other = samples.cosigner_body(samples.COSIGNER_WITHDRAW, request_id="fresh")
    assert await h.cosigner(WITHDRAW, other) == (200, "FAILURE")
    h.holder.current = policy(3)
    replay = samples.cosigner_body(samples.COSIGNER_WITHDRAW, to="0x2222222222222222222222222222222222222222")
    assert await h.cosigner(WITHDRAW, replay) == (200, "FAILURE")
    assert h.metric("callgate_decision_replays_total", {"provider": "chainup_cosigner"}) == 1
    await run_worker(h.settings)
    stored = await rows(db)
    assert [(r["idempotency_key"], r["policy_version"]) for r in stored[:2]] == [
        ("withdraw:sign_start:unique_request_id:regular", 1),
        ("withdraw:sign_start:fresh:regular", 2),
    ]
    # The replay is kept as evidence, with what it tried to change.
    assert (stored[2]["kind"], stored[2]["status"]) == ("replay.withdraw.sign_start", "rejected")
    assert stored[2]["payload"]["to_address"] == "0x2222222222222222222222222222222222222222"
    assert len(stored) == 3


async def test_concurrent_duplicates_get_one_answer_and_one_audit_row(
    chainup: Start, run_worker: RunWorker, redis: Redis, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    h = await chainup()
    body = samples.cosigner_body(samples.COSIGNER_WEB3)
    answers = await asyncio.gather(*(h.cosigner(WEB3, body) for _ in range(40)))
    assert set(answers) == {(200, "SUCCESS")}
    assert await redis.zcard(h.settings.queue_name) == 1
    await run_worker(h.settings)
    assert len(await rows(db)) == 1


async def test_no_policy_fails_closed(chainup: Start) -> None:
    h = await chainup(no_policy=True)
    assert await h.cosigner(WITHDRAW, samples.cosigner_body(samples.COSIGNER_WITHDRAW)) == (200, "FAILURE")


async def test_redis_down_answers_failure(chainup: Start, settings: Settings, aiohttp_client: AiohttpClient) -> None:
    h = await chainup()
    down = dataclasses.replace(h.settings, redis_url="redis://127.0.0.1:1/0")
    app = create_app(down, metrics=Metrics())
    app[POLICY] = Holder(policy(1))
    client = await aiohttp_client(app)
    response = await client.post(
        WITHDRAW, data=samples.cosigner_body(samples.COSIGNER_WITHDRAW), headers={"X-Callgate-Token": TOKEN}
    )
    assert (response.status, await response.text()) == (200, "FAILURE")


@pytest.mark.parametrize(
    ("options", "headers", "path", "allowed"),
    [
        ({}, {}, WITHDRAW, True),
        ({}, {"X-Callgate-Token": "wrong-" + TOKEN}, WITHDRAW, False),
        ({}, {"X-Callgate-Token": ""}, WITHDRAW, False),
        ({}, {"X-Callgate-Token": ""}, f"{WITHDRAW}?token={TOKEN}", True),
        ({"token": None}, {"X-Callgate-Token": ""}, WITHDRAW, True),
        ({"allowed_networks": (ipaddress.ip_network("10.0.0.0/8"),)}, {}, WITHDRAW, False),
        ({"allowed_networks": (ipaddress.ip_network("127.0.0.1/32"),)}, {}, WITHDRAW, True),
    ],
)
async def test_token_and_source_protection(
    chainup: Start, options: dict[str, Any], headers: dict[str, str], path: str, allowed: bool
) -> None:
    h = await chainup(**options)
    status, text = await h.cosigner(path, samples.cosigner_body(samples.COSIGNER_WITHDRAW), **headers)
    assert (status, text) == ((200, "SUCCESS") if allowed else (403, "FAILURE"))
    assert h.outcome("chainup_cosigner", "unauthorized") == (0 if allowed else 1)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        samples.cosigner_body(samples.COSIGNER_WITHDRAW, amount="-5"),
        b'{"type": "sign_start"}',
        b"x" * 70000,
    ],
)
async def test_invalid_bodies_answer_failure(chainup: Start, body: bytes) -> None:
    h = await chainup()
    assert await h.cosigner(WITHDRAW, body) == (400, "FAILURE")
    assert h.outcome("chainup_cosigner", "invalid") == 1


async def test_verify_public_hash_self_check(chainup: Start) -> None:
    h = await chainup()
    check = {
        "type": "verify_public_hash",
        "app_id": APP_ID,
        "client_system_pubkey_hash": public_key_hash(APP_ID, _pem(1)),
        "verify_sign_pub_hash": "",
    }
    response = await h.client.post(WITHDRAW, json=check, headers={"X-Callgate-Token": TOKEN})
    assert await response.json() == {
        "client_system_pubkey_hash_valid": "SUCCESS",
        "verify_sign_pub_hash_valid": "SUCCESS",
    }
    wrong = {**check, "client_system_pubkey_hash": public_key_hash(APP_ID, _pem(0))}
    response = await h.client.post(WITHDRAW, json=wrong, headers={"X-Callgate-Token": TOKEN})
    assert (await response.json())["client_system_pubkey_hash_valid"] == "FAILURE"


async def test_sign_success_is_recorded(
    chainup: Start, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    h = await chainup(no_policy=True)  # recording a txid needs no policy
    body = samples.cosigner_body(samples.COSIGNER_WEB3, type="sign_success", txid="0x" + "cd" * 32)
    assert [await h.cosigner(WEB3, body) for _ in range(2)] == [(200, "SUCCESS")] * 2
    await run_worker(h.settings)
    (row,) = await rows(db)
    assert row["kind"] == "web3.sign_success" and row["payload"]["txid"] == "0x" + "cd" * 32


# -- Custody WaaS V2 notifications -----------------------------------------------------------


async def test_notifications_are_acknowledged_once_durable_and_stored_once(
    chainup: Start, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    h = await chainup()
    for payload in (samples.WAAS_DEPOSIT, samples.WAAS_DEPOSIT, samples.WAAS_WITHDRAW):
        assert await h.waas(NOTIFY, payload) == (200, "SUCCESS")
    assert h.outcome("chainup_waas", "accepted") == 2 and h.outcome("chainup_waas", "duplicate") == 1
    await run_worker(h.settings)
    stored = await rows(db)
    assert [(r["kind"], r["idempotency_key"]) for r in stored] == [
        ("deposit", "deposit:45325:1"),
        ("withdraw", "withdraw:45326:5"),
    ]
    assert Decimal(stored[0]["payload"]["amount"]) == Decimal("1250.000000000000000001")


@pytest.mark.parametrize(("chunk", "urlsafe"), [(245, False), (234, True)])
async def test_both_helper_styles_are_accepted(chainup: Start, chunk: int, urlsafe: bool) -> None:
    h = await chainup()
    payload = {**samples.WAAS_WITHDRAW, "memo": "m" * 400}
    assert await h.waas(NOTIFY, payload, chunk=chunk, urlsafe=urlsafe) == (200, "SUCCESS")


async def test_forged_tampered_truncated_and_foreign_notifications_fail(chainup: Start) -> None:
    h = await chainup()
    good = samples.encrypt_as_chainup(samples.WAAS_DEPOSIT, chainup_key())
    flipped = good[:400] + ("A" if good[400] != "A" else "B") + good[401:]
    forged = samples.encrypt_as_chainup(samples.WAAS_DEPOSIT, merchant_key())
    for data in (flipped, good[:-10], forged, "!!!"):
        assert await h.waas(NOTIFY, data) == (403, "FAILURE")
    assert h.outcome("chainup_waas", "undecryptable") == 4
    assert await h.waas(NOTIFY, good, app_id="someone-else") == (403, "FAILURE")
    assert h.outcome("chainup_waas", "unknown_app") == 1
    response = await h.client.post(NOTIFY, data=b"app_id=a&app_id=b&data=x")
    assert (response.status, await response.text()) == (400, "FAILURE")
    assert await h.waas(NOTIFY, {**samples.WAAS_DEPOSIT, "side": "refund"}) == (400, "FAILURE")
    assert h.outcome("chainup_waas", "accepted") == 0


def order(**changes: Any) -> ExpectedOrder:
    fields: dict[str, Any] = {
        "provider": "chainup_waas",
        "order_ref": "order-77",
        "chain": "ETH",  # the sample's USDTERC20, registered by chain and asset as every provider's
        "asset": "USDT",
        "destination": samples.TREASURY.lower(),
        "amount": Decimal("12.5"),
        "expires_at": time.time() + 600,
    }
    return ExpectedOrder(**{**fields, **changes})


async def registered(h: Harness, db: asyncpg.Pool[asyncpg.Record], redis: Redis, expected: ExpectedOrder) -> float:
    """Register through the real registry; returns how long until this gateway's replica saw it."""
    started = time.perf_counter()
    await register(db, redis, RedisKeys(h.settings.key_prefix), expected)
    replica = h.client.app[ORDERS]
    while replica.lookup(expected.provider, expected.order_ref) is None:
        assert time.perf_counter() - started < 1.0, "the replica did not see the order within a second"
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


def opened(answer: str) -> object:
    data = json.loads(answer)["data"]
    return json.loads(rsablocks.public_decrypt(merchant_key().public, rsablocks.b64decode(data)))


async def test_a_registered_order_is_confirmed_with_its_check_sum_once(
    chainup: Start, db: asyncpg.Pool[asyncpg.Record], redis: Redis, run_worker: RunWorker
) -> None:
    h = await chainup()
    lag = await registered(h, db, redis, order())
    assert lag < 1.0
    status, answer = await h.waas(CONFIRM, samples.WAAS_CONFIRM)
    assert status == 200 and opened(answer) == {"check_sum": "k3j4h5g6", "time": 1700000000000}
    consumed = h.client.app[ORDERS].lookup("chainup_waas", "order-77")
    assert consumed is not None and consumed.confirmed
    # ChainUp asks again (a retry, maybe with a fresh check_sum): the same verdict, its own check_sum.
    status, again = await h.waas(CONFIRM, {**samples.WAAS_CONFIRM, "check_sum": "zz99", "time": "1700000000999"})
    assert opened(again) == {"check_sum": "zz99", "time": "1700000000999"}
    # The same request id for another destination is a replay, however consumed the order is.
    assert await h.waas(CONFIRM, {**samples.WAAS_CONFIRM, "to_address": OTHER_ROUTER}) == (200, "FAILURE")
    await run_worker(h.settings)
    assert [(r["kind"], r["status"]) for r in await rows(db)] == [
        ("withdraw.confirm", "approve"),
        ("replay.withdraw.confirm", "rejected"),
    ]


async def test_concurrent_notifications_and_confirmations_make_one_event_each(
    chainup: Start, db: asyncpg.Pool[asyncpg.Record], redis: Redis, run_worker: RunWorker
) -> None:
    h = await chainup()
    await registered(h, db, redis, order())
    notify = [h.waas(NOTIFY, samples.WAAS_DEPOSIT) for _ in range(20)]
    confirm = [h.waas(CONFIRM, samples.WAAS_CONFIRM) for _ in range(20)]
    answers = await asyncio.gather(*notify, *confirm)
    assert set(answers[:20]) == {(200, "SUCCESS")}
    assert {opened(text)["check_sum"] for _, text in answers[20:]} == {"k3j4h5g6"}  # type: ignore[index]
    assert h.outcome("chainup_waas", "accepted") == 1 and h.outcome("chainup_waas", "duplicate") == 19
    await run_worker(h.settings)
    assert sorted(r["kind"] for r in await rows(db)) == ["deposit", "withdraw.confirm"]


async def test_an_order_registered_after_the_first_ask_is_confirmed_on_the_retry(
    chainup: Start, db: asyncpg.Pool[asyncpg.Record], redis: Redis
) -> None:
    h = await chainup()
    assert await h.waas(CONFIRM, samples.WAAS_CONFIRM) == (200, "FAILURE")
    await registered(h, db, redis, order())
    status, answer = await h.waas(CONFIRM, samples.WAAS_CONFIRM)
    assert status == 200 and opened(answer) == {"check_sum": "k3j4h5g6", "time": 1700000000000}


@pytest.mark.parametrize(
    ("expected", "asked"),
    [
        (order(amount=Decimal("12.4")), {}),
        (order(destination=OTHER_ROUTER), {}),
        (order(expires_at=time.time() - 1), {}),
        (order(), {"amount": "2000"}),  # matches no order, and over the policy limit
        (order(chain="USDTERC20", asset="USDTERC20"), {}),  # the bare symbol, as registered before the split
        (order(order_ref="order-78", amount=Decimal("2000")), {"request_id": "order-78", "amount": "2000"}),
    ],
)
async def test_confirmations_that_do_not_match_or_break_the_policy_are_refused(
    chainup: Start, db: asyncpg.Pool[asyncpg.Record], redis: Redis, expected: ExpectedOrder, asked: dict[str, str]
) -> None:
    h = await chainup()
    await registered(h, db, redis, expected)
    assert await h.waas(CONFIRM, {**samples.WAAS_CONFIRM, **asked}) == (200, "FAILURE")
    assert h.outcome("chainup_waas", "rejected") == 1


async def test_cosigner_withdrawals_can_require_a_registered_order(
    chainup: Start, db: asyncpg.Pool[asyncpg.Record], redis: Redis
) -> None:
    rule = {"id": "registered", "kind": "expected_order", "match": {"provider": "chainup_cosigner"}}
    h = await chainup(snapshot=policy(1, [*RULES, rule]))
    body = samples.cosigner_body(samples.COSIGNER_WITHDRAW)
    assert await h.cosigner(WITHDRAW, body) == (200, "FAILURE")  # not registered yet: not remembered
    # Registered by chain and asset, as every provider's: the co-signer's USDTERC20 is ETH/USDT.
    expected = order(
        provider="chainup_cosigner", order_ref="unique_request_id", chain="ETH", asset="USDT", amount=Decimal("100.5")
    )
    await registered(h, db, redis, expected)
    assert await h.cosigner(WITHDRAW, body) == (200, "SUCCESS")


async def test_withdraw_confirmation_without_a_registered_order_is_refused(chainup: Start) -> None:
    h = await chainup()
    assert await h.waas(CONFIRM, samples.WAAS_CONFIRM) == (200, "FAILURE")
    h2 = await chainup(merchant=False)
    assert await h2.waas(CONFIRM, {**samples.WAAS_CONFIRM, "request_id": "other"}) == (200, "FAILURE")


# -- callgate demo ---------------------------------------------------------------------------


async def test_the_demo_samples_get_the_answers_they_announce(chainup: Start, tmp_path: Path) -> None:
    h = await chainup()
    key_file = tmp_path / "chainup-test.pem"
    key_file.write_bytes(
        _key(0).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    waas_config = h.settings.providers.chainup_waas
    assert waas_config is not None
    settings = with_providers(
        h.settings, chainup_waas=dataclasses.replace(waas_config, demo_private_key_file=str(key_file))
    )
    base = str(h.client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        lines = await send_chainup_cosigner(settings, session, base) + await send_chainup_waas(settings, session, base)
    assert [line.split(": ", 1)[1][:11] for line in lines] == [
        "200 SUCCESS",  # withdraw sign_start
        "200 SUCCESS",  # its retry, from memory
        "200 SUCCESS",  # unlimited approval of the listed router
        "200 SUCCESS",  # sign_success recorded
        '200 {"clien',  # verify_public_hash
        "403 FAILURE",  # unknown app id
        "403 FAILURE",  # forged notification
        "200 SUCCESS",  # deposit
        "200 SUCCESS",  # deposit retried
        "200 SUCCESS",  # withdrawal result
        '200 {"data"',  # second confirmation of the registered order
    ]
    assert h.outcome("chainup_waas", "duplicate") == 1


async def test_the_demo_without_a_test_key_sends_only_refusals(chainup: Start) -> None:
    h = await chainup()
    async with aiohttp.ClientSession() as session:
        lines = await send_chainup_waas(h.settings, session, str(h.client.make_url("")).rstrip("/"))
    assert len(lines) == 3 and "CALLGATE_CHAINUP_DEMO_PRIVATE_KEY_FILE" in lines[2]


async def test_hostile_bodies_never_reach_a_500(chainup: Start) -> None:
    h = await chainup()
    rng = random.Random(5)
    good = samples.encrypt_as_chainup(samples.WAAS_DEPOSIT, chainup_key())
    bodies = [rng.randbytes(rng.randint(0, 600)) for _ in range(60)]
    bodies += [samples.cosigner_body(samples.COSIGNER_WEB3, **{k: rng.choice([None, [], {}, -1, "0x", 2**70])})
               for k in samples.COSIGNER_WEB3 for _ in range(2)]  # fmt: skip
    bodies += [samples.waas_form(APP_ID, good[: rng.randint(0, len(good))]) for _ in range(20)]
    for body in bodies:
        for path in (WITHDRAW, WEB3, NOTIFY, CONFIRM):
            status, text = await h.cosigner(path, body)
            assert status < 500 and text in ("SUCCESS", "FAILURE"), (path, body[:80], status, text)
