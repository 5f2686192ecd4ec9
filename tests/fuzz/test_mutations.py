"""A mutation fuzzer over valid, signed requests of every authenticated route, through the real
gateway (real Redis and PostgreSQL behind it).

For each route one valid request is accepted first (so the oracle is not vacuous); then:
- tampered copies, each with a bit flipped inside what authenticates it (signature, JWT header
  or claims, ciphertext, HMAC-covered body, API key, path token, app id, timestamp), decoded,
  flipped and re-encoded so the flip cannot vanish in Base64/hex slack: none is accepted,
  approved or answered SUCCESS, none gets a 5xx;
- raw mutations (bits flipped anywhere, truncations, junk appended, hostile headers such as a
  false Content-Encoding): whatever they are answered, never a 5xx;
and the process still answers /healthz afterwards. Seeded: a failure names its seed and case.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.keys import POLICY
from shared.config import Settings, WyreSettings
from shared.keys import RedisKeys
from shared.metrics import Metrics
from shared.policy.document import parse_document
from shared.policy.snapshot import PolicySnapshot, compile_snapshot
from shared.providers import chainup_samples, cobo_tss_samples, wyre
from shared.providers.cobo_ucw_store import add_wallet
from tests.conftest import AiohttpClient
from tests.faults.routes import ASYNC_ROUTES, UCW_VAULT, UCW_WALLET, WYRE_TOKEN, Answer, Callback, rsa_key
from tests.waas_standin import WaasStandin, running_standin

Client = TestClient[web.Request, web.Application]
SEED = int(os.environ.get("FUZZ_SEED", "0")) or random.SystemRandom().randrange(1, 2**32)
TAMPERED, RAW = 30, 30  # cases per route
WYRE_SECRET = "wyre-signing-secret-fuzz"
ROUTES = {r.provider: r for r in ASYNC_ROUTES}
KEYGEN_RULE = {"id": "kg", "kind": "tss", "match": {"provider": "cobo_tss", "operation": ["keygen"]},
               "node_ids": list(cobo_tss_samples.NODE_IDS), "min_threshold": 2, "curves": ["SECP256K1"]}  # fmt: skip


@dataclass
class FixedPolicy:
    current: PolicySnapshot | None


@dataclass(frozen=True)
class Target:
    name: str
    build: Callable[[str], Callback]  # a fresh valid request per id
    accepted: Callable[[Answer], bool]  # success, SUCCESS or APPROVE
    tamper: Callable[[Callback, random.Random], Callback]  # a copy whose authenticated part is broken


# -- flips that cannot vanish in an encoding's slack ------------------------------------------


def flip(raw: bytes, rng: random.Random) -> bytes:
    if not raw:
        return b"\x01"
    data = bytearray(raw)
    index = rng.randrange(len(data))
    data[index] ^= 1 << rng.randrange(8)
    return bytes(data)


def flip_char(text: str, rng: random.Random) -> str:
    index = rng.randrange(len(text))
    choices = [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_" if c != text[index]]
    return text[:index] + rng.choice(choices) + text[index + 1 :]


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def tamper_jwt(token: str, rng: random.Random) -> str:
    parts = token.split(".")
    which = rng.randrange(3)  # header, claims or signature
    parts[which] = _b64url(flip(_b64url_decode(parts[which]), rng))
    return ".".join(parts)


def _with_headers(callback: Callback, **headers: str) -> Callback:
    return dataclasses.replace(callback, headers={**callback.headers, **headers})


# -- the routes ------------------------------------------------------------------------------


def _wyre_signed(ident: str) -> Callback:
    callback = ROUTES["wyre"].build(ident)
    return _with_headers(callback, **{"X-Api-Signature": wyre.sign(callback.body, WYRE_SECRET)})


def _tamper_wyre(c: Callback, rng: random.Random) -> Callback:
    match rng.randrange(3):
        case 0:
            return dataclasses.replace(c, body=flip(c.body, rng))  # the HMAC covers the raw body
        case 1:
            signature = flip(bytes.fromhex(c.headers["X-Api-Signature"]), rng).hex()
            return _with_headers(c, **{"X-Api-Signature": signature})
        case _:
            return dataclasses.replace(c, path=c.path.replace(WYRE_TOKEN, flip_char(WYRE_TOKEN, rng)))


def _tamper_uu(c: Callback, rng: random.Random) -> Callback:
    if rng.random() < 0.3:
        return _with_headers(c, **{"X-API-KEY": flip_char(c.headers["X-API-KEY"], rng)})
    return dataclasses.replace(c, body=base64.b64encode(flip(base64.b64decode(c.body), rng)))


def _tamper_chainup(c: Callback, rng: random.Random) -> Callback:
    form = dict(parse_qsl(c.body.decode()))
    app_id, data = form["app_id"], form["data"]
    if rng.random() < 0.3:
        app_id = flip_char(app_id, rng)
    else:
        data = _b64url(flip(_b64url_decode(data), rng))
    return dataclasses.replace(c, body=chainup_samples.waas_form(app_id, data))


def _tamper_tss(c: Callback, rng: random.Random) -> Callback:
    token = c.body.decode().removeprefix("TSS_JWT_MSG=")
    return dataclasses.replace(c, body=f"TSS_JWT_MSG={tamper_jwt(token, rng)}".encode())


def _tamper_ucw(c: Callback, rng: random.Random) -> Callback:
    return _with_headers(c, **{"X-API-Key": flip_char(c.headers["X-API-Key"], rng)})


def _tss_check(ident: str) -> Callback:
    token = cobo_tss_samples.request_token(cobo_tss_samples.keygen(f"kg-{ident}"), rsa_key("tss-node"), ttl_s=600)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return Callback("/cobo/tss-node/v2/check", f"TSS_JWT_MSG={token}".encode(), headers, f"kg-{ident}")


def _tss_approved(a: Answer) -> bool:
    if a.status != 200:
        return False
    answer = cobo_tss_samples.read_response(a.body.decode(), rsa_key("tss-ours").public_key())
    return bool(answer.get("action") == "APPROVE")


def _webhook_builder(standin: WaasStandin) -> Callable[[str], Callback]:
    def build(ident: str) -> Callback:
        event = {
            "event_id": f"evt-{ident}",
            "created_timestamp": int(time.time() * 1000),
            "type": "wallets.mpc.tss_request.succeeded",
            "data": {"data_type": "TSSRequest", "tss_request_id": f"tss-{ident}", "status": "Success"},
        }
        body = orjson.dumps(event)
        headers = {"Content-Type": "application/json", **standin.sign(body, str(int(time.time() * 1000)))}
        return Callback("/cobo/waas/webhooks", body, headers, f"evt-{ident}")

    return build


def _tamper_webhook(c: Callback, rng: random.Random) -> Callback:
    headers = {k.lower(): v for k, v in c.headers.items()}
    match rng.randrange(3):
        case 0:
            return dataclasses.replace(c, body=flip(c.body, rng))
        case 1:
            signature = flip(bytes.fromhex(headers["biz-resp-signature"]), rng).hex()
            return dataclasses.replace(c, headers={**headers, "biz-resp-signature": signature})
        case _:
            stamp = headers["biz-timestamp"]
            return dataclasses.replace(
                c, headers={**headers, "biz-timestamp": str(int(stamp) + rng.randrange(1, 10**6))}
            )


def _webhook_ok(a: Answer) -> bool:
    return a.status == 200 and orjson.loads(a.body).get("status") in {"accepted", "duplicate", "spooled"}


def targets(standin: WaasStandin) -> dict[str, Target]:
    r = ROUTES
    return {
        "wyre": Target("wyre", _wyre_signed, r["wyre"].success, _tamper_wyre),
        "uuwallet": Target("uuwallet", r["uuwallet"].build, r["uuwallet"].success, _tamper_uu),
        "chainup_waas": Target("chainup_waas", r["chainup_waas"].build, r["chainup_waas"].success, _tamper_chainup),
        "cobo_tss_event": Target("cobo_tss_event", r["cobo_tss"].build, r["cobo_tss"].success, _tamper_tss),
        "cobo_tss_check": Target("cobo_tss_check", _tss_check, _tss_approved, _tamper_tss),
        "cobo_ucw": Target("cobo_ucw", r["cobo_ucw"].build, r["cobo_ucw"].success, _tamper_ucw),
        "cobo_waas": Target("cobo_waas", _webhook_builder(standin), _webhook_ok, _tamper_webhook),
    }


# -- raw mutations: only "no 5xx" -------------------------------------------------------------

HOSTILE_HEADERS: tuple[dict[str, str], ...] = (
    {"Content-Encoding": "gzip"},
    {"Content-Encoding": "deflate"},
    {"Content-Encoding": "br"},
    {"Content-Encoding": "x-unknown"},
    {"Content-Type": "multipart/form-data; boundary=zz"},
    {"Content-Type": "application/x-www-form-urlencoded; charset=utf-16"},
    {"Content-Type": "application/json; charset=bogus"},
    {"X-Api-Signature": "zz" * 40},
    {"BIZ_TIMESTAMP": "-1", "BIZ_RESP_SIGNATURE": "00"},
    {"X-Forwarded-For": "1.2.3.4, , ::1"},
)


def raw_mutation(c: Callback, rng: random.Random) -> Callback:
    body = c.body
    match rng.randrange(5):
        case 0:
            body = flip(body, rng)
        case 1:
            body = body[: rng.randrange(len(body) + 1)]
        case 2:
            body = body + rng.randbytes(rng.randrange(1, 64))
        case 3:
            body = rng.randbytes(rng.randrange(0, 512))
        case _:
            return _with_headers(c, **rng.choice(HOSTILE_HEADERS))
    return dataclasses.replace(c, body=body)


# -- the gateway -----------------------------------------------------------------------------


@pytest.fixture
async def standin() -> AsyncIterator[WaasStandin]:
    async with running_standin() as s:
        yield s


async def _gateway(
    settings: Settings, standin: WaasStandin, aiohttp_client: AiohttpClient, db: asyncpg.Pool[asyncpg.Record]
) -> Client:
    configured = settings
    for route in ASYNC_ROUTES:
        configured = route.configure(configured, standin)
    wyre_settings = WyreSettings(path_token=WYRE_TOKEN, signing_secret=WYRE_SECRET)
    configured = dataclasses.replace(
        configured, providers=dataclasses.replace(configured.providers, wyre=wyre_settings)
    )
    redis = Redis.from_url(configured.redis_url)
    async with db.acquire() as conn:
        await add_wallet(conn, redis, RedisKeys(configured.key_prefix), UCW_WALLET, UCW_VAULT)
    await redis.aclose()
    app = create_app(configured, metrics=Metrics())
    document = parse_document({"rules": [KEYGEN_RULE], "defaults": {"*": "REJECT"}})
    app[POLICY] = FixedPolicy(compile_snapshot(document, version=1, published_at=time.time(), sha256="fuzz"))
    return await aiohttp_client(app)


async def _send(client: Client, c: Callback) -> Answer:
    response = await client.post(c.path, data=c.body, headers=c.headers)
    return Answer(response.status, await response.read())


TARGET_NAMES = ("wyre", "uuwallet", "chainup_waas", "cobo_tss_event", "cobo_tss_check", "cobo_ucw", "cobo_waas")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", TARGET_NAMES)
async def test_mutated_requests_are_never_accepted_and_never_a_5xx(
    name: str,
    settings: Settings,
    standin: WaasStandin,
    aiohttp_client: AiohttpClient,
    redis: Redis,
    db: asyncpg.Pool[asyncpg.Record],
) -> None:
    client = await _gateway(settings, standin, aiohttp_client, db)
    target = targets(standin)[name]
    rng = random.Random(f"{SEED}:{name}")
    base = rng.randrange(10**8) * 1000
    valid = target.build(str(base))
    first = await _send(client, valid)
    assert target.accepted(first), (first, f"seed {SEED}")
    for case in range(TAMPERED):
        mutant = target.tamper(target.build(str(base + 1 + case)), rng)
        answer = await _send(client, mutant)
        assert answer.status < 500 and not target.accepted(answer), (f"seed {SEED} case {case}", mutant, answer)
    cut_off = 0
    for case in range(RAW):
        mutant = raw_mutation(valid, rng)
        try:
            answer = await _send(client, mutant)
        except aiohttp.ServerDisconnectedError:
            # aiohttp closes a connection whose body it cannot decode once the answer is out:
            # the next request on that keep-alive connection sees the close. Not an answer.
            cut_off += 1
            continue
        assert answer.status < 500, (f"seed {SEED} raw case {case}", mutant, answer)
    assert cut_off < RAW // 2
    assert (await client.get("/healthz")).status == 200
    assert target.accepted(await _send(client, valid))  # and the original still gets its answer
