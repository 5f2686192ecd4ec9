"""Cobo TSS Node callback server end to end: real gateway, Redis, burst worker and Postgres."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from callgate.cobo_tss_demo import KEY_VARIABLE, send_cobo_tss
from gateway.app import create_app
from gateway.handlers.cobo_tss import _form_token
from gateway.keys import METRICS, POLICY
from gateway.signer import SIGNER, ThreadSigner
from shared.config import CoboTssSettings, Settings
from shared.errors import InvalidInput
from shared.jobs import key_hash
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.document import parse_document
from shared.policy.snapshot import PolicySnapshot, compile_snapshot
from shared.providers import cobo_tss_samples as samples
from shared.providers.cobo_jwt import sign_rs256
from tests.conftest import AiohttpClient, RunWorker, sample_value, with_providers

Client = TestClient[web.Request, web.Application]
NODE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OURS = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EVENTS = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CHECK = "/cobo/tss-node/v2/check"

RULES: list[dict[str, Any]] = [
    {"id": "kg", "kind": "tss", "match": {"provider": "cobo_tss", "operation": ["keygen", "reshare"]},
     "node_ids": list(samples.NODE_IDS), "min_threshold": 2, "curves": ["SECP256K1"]},
    {"id": "kss", "kind": "tss", "match": {"provider": "cobo_tss", "operation": "keysharesign"},
     "node_ids": list(samples.NODE_IDS)},
    {"id": "ks", "kind": "tss", "match": {"provider": "cobo_tss", "operation": "keysign"},
     "signature_types": ["ECDSA"], "protocols": ["LINDELL", "GG18"]},
    {"id": "eth", "kind": "amount_limit", "match": {"provider": "cobo_tss", "chain": "ETH", "asset": "ETH"},
     "max_amount": "2"},
]  # fmt: skip


def policy(version: int, rules: list[dict[str, Any]]) -> PolicySnapshot:
    document = parse_document({"rules": rules, "defaults": {"cobo_tss": "REJECT"}})
    return compile_snapshot(document, version=version, published_at=time.time(), sha256="test")


@dataclasses.dataclass
class Holder:
    """Stands where the policy holder sits in production: a mutable `.current`."""

    current: PolicySnapshot | None


@dataclasses.dataclass
class Harness:
    client: Client
    holder: Holder
    settings: Settings

    async def check(self, package: dict[str, Any], *, key: rsa.RSAPrivateKey = NODE) -> dict[str, Any]:
        return await self.post_token(samples.request_token(package, key))

    async def post_token(self, token: str) -> dict[str, Any]:
        return await self.post(data={"TSS_JWT_MSG": token})

    async def post(self, **kw: Any) -> dict[str, Any]:
        response = await self.client.post(self.path, **kw)
        assert response.status == 200 and response.content_type == "text/plain"
        return samples.read_response(await response.text(), OURS.public_key())

    @property
    def path(self) -> str:
        config = self.settings.providers.cobo_tss
        return config.check_path if config else CHECK

    def metric(self, name: str, labels: dict[str, str]) -> float:
        return sample_value(self.client.app[METRICS], name, labels)


Start = Callable[..., Awaitable[Harness]]


@pytest.fixture
def cobo(aiohttp_client: AiohttpClient, redis: Redis, db: asyncpg.Pool[asyncpg.Record], settings: Settings) -> Start:
    async def start(
        *, snapshot: PolicySnapshot | None = None, redis_url: str | None = None, **overrides: Any
    ) -> Harness:
        config = CoboTssSettings(
            node_public_key=NODE.public_key(),
            private_key=OURS,
            **({"event_public_key": EVENTS.public_key()} | overrides),
        )
        tss_settings = with_providers(
            dataclasses.replace(settings, redis_url=redis_url or settings.redis_url), cobo_tss=config
        )
        app = create_app(tss_settings, metrics=Metrics())
        holder = Holder(snapshot if snapshot is not None else policy(1, RULES))
        app[POLICY] = holder
        return Harness(await aiohttp_client(app), holder, tss_settings)

    return start


async def rows(db: asyncpg.Pool[asyncpg.Record]) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT kind, idempotency_key, status, decision, policy_version, payload FROM events ORDER BY id"
    )


@pytest.mark.parametrize(
    ("package", "action", "code"),
    [
        (samples.keygen("kg-ok"), "APPROVE", ""),
        (samples.keygen("kg-low", threshold=1), "REJECT", "threshold_below_minimum"),
        (samples.keygen("kg-curve", curve=2), "REJECT", "curve_not_allowed"),
        (samples.reshare("rs-ok"), "APPROVE", ""),
        (samples.reshare("rs-bad", new_node_ids=("coboNodeA1", "stranger")), "REJECT", "node_not_allowed"),
        (samples.keysign("ks-ok"), "APPROVE", ""),
        (samples.keysign("ks-big", raw_tx=samples.evm_transfer_tx(wei=3 * 10**18), amount="3"), "REJECT",
         "amount_over_limit"),
        (samples.keysharesign("kss-ok"), "APPROVE", ""),
        (samples.keysharesign("kss-bad", node_id="stranger"), "REJECT", "node_not_allowed"),
        ({"request_id": "t4", "request_type": 4, "request_detail": "{}", "extra_info": "{}"}, "REJECT",
         "unsupported_request_type"),
    ],
)  # fmt: skip
async def test_every_request_type_is_decided_signed_and_audited(
    cobo: Start,
    run_worker: RunWorker,
    db: asyncpg.Pool[asyncpg.Record],
    package: dict[str, Any],
    action: str,
    code: str,
) -> None:
    h = await cobo()
    answer = await h.check(package)
    assert answer["request_id"] == package["request_id"] and answer["status"] == 0
    assert answer["action"] == action and answer["error"].startswith(code)
    await run_worker(h.settings)
    [row] = await rows(db)
    assert row["idempotency_key"] == package["request_id"] and row["policy_version"] == 1
    assert row["status"] == action.lower()
    decision = row["decision"]
    assert decision["action"] == action and (not code or decision["reasons"][0]["code"] == code)
    assert decision["decision_seconds"] < 0.05


async def test_ping_is_approved_and_not_memoised(cobo: Start, redis: Redis) -> None:
    h = await cobo()
    empties: tuple[object, ...] = ("", {})
    for empty in empties:
        answer = await h.check({"request_id": empty, "request_type": 0, "request_detail": empty, "extra_info": empty})
        assert (answer["status"], answer["action"], answer["request_id"]) == (0, "APPROVE", "")
    assert await redis.dbsize() == 0
    health = await h.client.get("/cobo/tss-node/ping")
    assert health.status == 200 and (await health.json())["server"] == "callgate"


def _token_claims() -> dict[str, Any]:
    package = base64.b64encode(orjson.dumps(samples.keygen("tok"))).decode()
    return {"package_data": package, "exp": int(time.time()) + 60, "iss": "node"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(alg: str, key: bytes | None = None) -> str:
    head = _b64(orjson.dumps({"alg": alg, "typ": "JWT"})) + "." + _b64(orjson.dumps(_token_claims()))
    signature = hmac.new(key, head.encode(), hashlib.sha256).digest() if key else b""
    return head + "." + _b64(signature)


NODE_PEM = NODE.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _tampered() -> str:
    header, _, signature = sign_rs256(_token_claims(), NODE).split(".")
    return f"{header}.{_b64(orjson.dumps(_token_claims() | {'iss': 'evil'}))}.{signature}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: _tampered(), "bad_signature"),
        (lambda: sign_rs256(_token_claims() | {"exp": int(time.time()) - 600}, NODE), "expired"),
        (lambda: sign_rs256(_token_claims(), EVENTS), "bad_signature"),
        (lambda: _unsigned("none"), "alg_not_allowed"),
        (lambda: _unsigned("HS256", NODE_PEM), "alg_not_allowed"),
        (lambda: "not-a-token", "malformed"),
    ],
)
async def test_token_failures_get_a_signed_status_20_reject(
    cobo: Start, redis: Redis, token: Callable[[], str], reason: str
) -> None:
    h = await cobo()
    answer = await h.post_token(token())
    assert (answer["status"], answer["action"], answer["request_id"]) == (20, "REJECT", "")
    assert answer["error"].startswith(reason)
    assert h.metric("callgate_token_failures_total", {"provider": "cobo_tss", "reason": reason}) == 1
    assert await redis.dbsize() == 0


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"data": {"OTHER": "x"}}, "TSS_JWT_MSG"),
        ({"json": {"TSS_JWT_MSG": "x"}}, "TSS_JWT_MSG"),
        ({"data": "TSS_JWT_MSG=a&TSS_JWT_MSG=b", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
         "TSS_JWT_MSG"),
        ({"data": "\u00e9".encode()}, "TSS_JWT_MSG"),
    ],
)  # fmt: skip
async def test_missing_field_and_non_form_bodies_get_status_10(cobo: Start, kw: dict[str, Any], field: str) -> None:
    h = await cobo()
    answer = await h.post(**kw)
    assert (answer["status"], answer["action"]) == (10, "REJECT") and answer["error"].startswith(field)


async def test_malformed_request_detail_gets_status_10(cobo: Start, redis: Redis) -> None:
    h = await cobo()
    package = samples.keygen("bad") | {"request_detail": '{"threshold": "two"'}
    answer = await h.check(package)
    assert (answer["status"], answer["action"]) == (10, "REJECT") and answer["error"].startswith("request_detail")
    answer = await h.check(samples.keygen("bad2") | {"request_detail": '{"threshold": "2", "node_ids": []}'})
    assert answer["status"] == 10 and "threshold" in answer["error"]
    assert await redis.dbsize() == 0


async def test_oversized_body_gets_a_signed_status_10(cobo: Start, settings: Settings) -> None:
    h = await cobo()
    answer = await h.post(data={"TSS_JWT_MSG": "x" * (settings.max_body_bytes + 10)})
    assert (answer["status"], answer["action"], answer["error"]) == (10, "REJECT", "request body too large")


async def test_concurrent_duplicates_get_one_decision_one_job_one_row(
    cobo: Start, run_worker: RunWorker, redis: Redis, db: asyncpg.Pool[asyncpg.Record], settings: Settings
) -> None:
    h = await cobo()
    token = samples.request_token(samples.keysign("dup"), NODE)
    answers = await asyncio.gather(*(h.post_token(token) for _ in range(30)))
    assert {(a["request_id"], a["status"], a["action"]) for a in answers} == {("dup", 0, "APPROVE")}
    assert await redis.zcard(settings.queue_name) == 1
    assert h.metric("callgate_callbacks_total", {"provider": "cobo_tss", "outcome": "duplicate"}) == 29
    await run_worker(h.settings)
    assert len(await rows(db)) == 1


async def test_a_retry_gets_the_first_answer_after_a_policy_change(cobo: Start) -> None:
    h = await cobo()
    first = await h.check(samples.keysign("retry"))
    h.holder.current = policy(2, [rule for rule in RULES if rule["id"] != "eth"])  # ETH no longer vouched for
    retry = await h.check(samples.keysign("retry"))
    assert first["action"] == retry["action"] == "APPROVE"
    fresh = await h.check(samples.keysign("fresh"))
    assert fresh["action"] == "REJECT" and fresh["error"].startswith("default_action")


async def test_reused_request_id_with_other_content_is_a_rejected_counted_replay(
    cobo: Start, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    h = await cobo()
    assert (await h.check(samples.keysign("rp", amount="1.5")))["action"] == "APPROVE"
    other = samples.keysign("rp", raw_tx=samples.evm_transfer_tx(to="0x" + "77" * 20), destination="0x" + "77" * 20)
    answer = await h.check(other)
    assert (answer["status"], answer["action"]) == (0, "REJECT") and answer["error"].startswith("request_id_replayed")
    assert h.metric("callgate_decision_replays_total", {"provider": "cobo_tss"}) == 1
    assert h.metric("callgate_callbacks_total", {"provider": "cobo_tss", "outcome": "accepted"}) == 1
    # and it does not poison the original: the first content still gets its APPROVE
    assert (await h.check(samples.keysign("rp", amount="1.5")))["action"] == "APPROVE"
    await run_worker(h.settings)
    assert [(r["kind"], r["status"]) for r in await rows(db)] == [
        ("decision.keysign", "approve"),
        ("replay.keysign", "rejected"),
    ]


async def test_evm_keysign_whose_hash_list_does_not_match_is_rejected(cobo: Start) -> None:
    h = await cobo()
    evil_hash = "0x" + hashlib.sha256(b"another transaction").hexdigest()
    answer = await h.check(samples.keysign("mm", msg_hashes=[evil_hash]))
    assert answer["action"] == "REJECT" and answer["error"].startswith("msg_hash_mismatch")
    labels = {"provider": "cobo_tss", "request_type": "keysign", "action": "REJECT", "reason": "msg_hash_mismatch"}
    assert h.metric("callgate_decisions_total", labels) == 1


async def test_no_policy_loaded_fails_closed(cobo: Start) -> None:
    h = await cobo()
    h.holder.current = None
    answer = await h.check(samples.keygen("nop"))
    assert answer["action"] == "REJECT" and answer["error"].startswith("no_policy")


async def test_redis_down_gets_a_signed_status_30_reject(cobo: Start) -> None:
    h = await cobo(redis_url="redis://127.0.0.1:1/0")  # nothing listens there: the memo round trip fails
    answer = await h.check(samples.keygen("down"))
    assert (answer["status"], answer["action"], answer["request_id"]) == (30, "REJECT", "down")
    assert h.metric("callgate_callbacks_total", {"provider": "cobo_tss", "outcome": "unavailable"}) == 1


async def test_configurable_check_path(cobo: Start) -> None:
    h = await cobo(check_path="/risk/tss")
    assert (await h.check(samples.keygen("path")))["action"] == "APPROVE"
    paths = {resource.canonical for resource in h.client.app.router.resources()}
    assert "/risk/tss" in paths and CHECK not in paths


def _event_token(event_id: str, key: rsa.RSAPrivateKey = EVENTS) -> str:
    data = {"request_id": "ks-1", "request_type": 2, "request_status": 190}
    event = {"event_id": event_id, "event_type": "request.keysign.succeeded", "node_id": "n1", "data": data}
    return samples.request_token(event, key)


async def test_events_are_enqueued_once_and_answered_like_the_templates(
    cobo: Start, run_worker: RunWorker, db: asyncpg.Pool[asyncpg.Record]
) -> None:
    h = await cobo()
    for _ in range(2):
        response = await h.client.post("/cobo/tss-node/v2/event", data={"TSS_JWT_MSG": _event_token("ev-1")})
        assert response.status == 200 and await response.json() == ""
    bad = await h.client.post("/cobo/tss-node/v2/event", data={"TSS_JWT_MSG": _event_token("ev-2", NODE)})
    assert bad.status == 400
    await run_worker(h.settings)
    [row] = await rows(db)
    assert (row["kind"], row["idempotency_key"]) == ("event.request.keysign.succeeded", "ev-1")
    assert row["payload"]["data"]["request_status"] == 190


async def test_demo_sends_signed_samples_and_reads_verified_answers(
    cobo: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await cobo()
    key_file = tmp_path / "node.pem"
    key_file.write_bytes(
        NODE.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    monkeypatch.setenv(KEY_VARIABLE, str(key_file))
    base = str(h.client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        lines = await send_cobo_tss(h.settings, session, base)
    text = "\n".join(lines)
    assert "forged token: 200 status 20 REJECT (malformed" in text
    assert "cobo_tss keysign retried: 200 status 0 APPROVE" in text
    assert "other destination: 200 status 0 REJECT (request_id_replayed" in text
    assert "not of its raw tx: 200 status 0 REJECT (msg_hash_mismatch" in text


async def test_event_route_is_off_without_an_event_key(cobo: Start) -> None:
    h = await cobo(event_public_key=None)
    response = await h.client.post("/cobo/tss-node/v2/event", data={"TSS_JWT_MSG": _event_token("ev-x")})
    assert response.status == 404 and (await response.json())["error"] == "not_found"


async def test_answers_signed_in_a_thread_are_the_same_protocol(cobo: Start) -> None:
    h = await cobo(signer="thread")
    assert isinstance(h.client.app[SIGNER], ThreadSigner)
    answers = await asyncio.gather(*(h.check(samples.keygen(f"thr-{i}")) for i in range(8)))
    assert {(a["status"], a["action"]) for a in answers} == {(0, "APPROVE")}
    assert sorted(a["request_id"] for a in answers) == sorted(f"thr-{i}" for i in range(8))


async def test_an_unreadable_memo_gets_a_signed_status_30(cobo: Start, redis: Redis) -> None:
    h = await cobo()
    await redis.set(RedisKeys(h.settings.key_prefix).memo("cobo_tss", key_hash("cobo_tss", "garbled")), b"[1, 2")
    answer = await h.check(samples.keygen("garbled"))
    assert (answer["status"], answer["action"], answer["request_id"]) == (30, "REJECT", "garbled")


_FORM_PIECES = ["TSS_JWT_MSG", "=", "&", "%", "%41", "+", ";", "a", "eyJ.x-_", "\u00e9", ""]


@given(st.lists(st.sampled_from(_FORM_PIECES), max_size=8))
def test_the_form_fast_path_reads_what_parse_qs_reads(parts: list[str]) -> None:
    # The node's own body takes a short cut past parse_qs; every body must still get parse_qs's
    # value, or its refusal.
    body = "".join(parts).encode()
    try:
        values = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=16).get("TSS_JWT_MSG", [])
    except (UnicodeDecodeError, ValueError):
        values = []
    expected = values[0] if len(values) == 1 and values[0] else None
    try:
        assert _form_token(body) == expected
    except InvalidInput:
        assert expected is None
