"""Every asynchronous provider route, as its provider calls it: for the fault and fuzz tests.

Each `AsyncRoute` enables its provider in `Settings`, builds the i-th distinct, correctly
signed/encrypted callback (as the provider's real side would: the samples modules and the
demos' own signers), names the events row it must become, and classifies an answer as the
protocol's success, its retry-me, or anything else (a failure of ours).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from callgate.demo import wyre_transaction
from shared import rsablocks
from shared.config import (
    ChainupWaasSettings,
    CoboTssSettings,
    CoboUcwSettings,
    CoboWaasSettings,
    Settings,
    UuWalletSettings,
    WyreSettings,
)
from shared.providers import chainup_samples, chainup_waas, cobo_tss_samples, cobo_ucw, uuwallet, uuwallet_samples, wyre
from shared.waas.cobo_auth import load_api_secret, load_public_key
from shared.waas.cobo_client import ClientOptions
from tests.waas_standin import WaasStandin

WYRE_TOKEN = "fault-wyre-token-" + secrets.token_hex(6)
UU_KEY = "uu-fault-key-" + secrets.token_hex(8)
UCW_KEY = "ucw-fault-key-" + secrets.token_hex(8)
CHAINUP_APP = "app-fault"
UCW_WALLET = "9b2f7a4e-3c1d-4e5f-8a6b-7c8d9e0f1a2b"
UCW_VAULT = "4f2a7c1e-0000-4000-8000-000000000001"
FAST_WAAS = ClientOptions(timeout_s=0.5, max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.02, rate_per_s=1000)


@cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """One test key per role and size, made once per process."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def uu_waas_key() -> rsablocks.RsaPrivate:
    return rsablocks.private_from_crypto(rsa_key("uuwallet", 1024))


def chainup_key() -> rsablocks.RsaPrivate:
    return rsablocks.private_from_crypto(rsa_key("chainup"))


@dataclass(frozen=True, slots=True)
class Callback:
    path: str
    body: bytes
    headers: dict[str, str]
    key: str  # the events.idempotency_key it must be stored under


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class AsyncRoute:
    provider: str  # events.provider
    configure: Callable[[Settings, WaasStandin | None], Settings]
    build: Callable[[str], Callback]  # a fresh, distinct callback per id
    success: Callable[[Answer], bool]
    retry: Callable[[Answer], bool]  # the protocol's "try again later"
    needs_waas: bool = False

    @property
    def name(self) -> str:
        return self.provider


def _json(answer: Answer) -> object:
    try:
        return orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return None


# -- Wyre ------------------------------------------------------------------------------------


def _wyre_settings(settings: Settings, _: WaasStandin | None) -> Settings:
    return _with(settings, wyre=WyreSettings(path_token=WYRE_TOKEN))


def _wyre(ident: str) -> Callback:
    body = wyre_transaction("CONFIRMED", f"TR_{ident}")
    key = wyre.parse_body(body).idempotency_key
    path = f"/wyre/v3/wallet-callbacks/{WYRE_TOKEN}"
    return Callback(path, body, {"Content-Type": "application/json"}, key)


def _wyre_ok(a: Answer) -> bool:
    answer = _json(a)
    return a.status == 200 and isinstance(answer, dict) and answer.get("status") in {"accepted", "duplicate", "spooled"}


# -- UU Wallet -------------------------------------------------------------------------------


def _uu_settings(settings: Settings, _: WaasStandin | None) -> Settings:
    return _with(settings, uuwallet=UuWalletSettings(api_keys=(UU_KEY,), public_key=uu_waas_key().public))


def _uu(ident: str) -> Callback:
    payload = uuwallet_samples.with_new_request_uuid(uuwallet_samples.DEPOSIT, txId=ident.ljust(64, "0"))
    key = uuwallet.idempotency_key(uuwallet.parse_callback(payload))
    headers = {"X-API-KEY": UU_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    return Callback("/uuwallet/callback", uuwallet_samples.encrypt_as_waas(payload, uu_waas_key()), headers, key)


def _uu_code(a: Answer) -> object:
    answer = _json(a)
    return answer.get("errCode") if isinstance(answer, dict) else None


# -- ChainUp WaaS ----------------------------------------------------------------------------


def _chainup_settings(settings: Settings, _: WaasStandin | None) -> Settings:
    return _with(settings, chainup_waas=ChainupWaasSettings(app_id=CHAINUP_APP, public_key=chainup_key().public))


def _chainup(ident: str) -> Callback:
    payload = {**chainup_samples.WAAS_DEPOSIT, "id": ident}
    key = chainup_waas.idempotency_key(chainup_waas.parse_notification(payload))
    data = chainup_samples.encrypt_as_chainup(payload, chainup_key())
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return Callback("/chainup/waas/notify", chainup_samples.waas_form(CHAINUP_APP, data), headers, key)


# -- Cobo TSS Node events --------------------------------------------------------------------


def _tss_settings(settings: Settings, _: WaasStandin | None) -> Settings:
    config = CoboTssSettings(
        node_public_key=rsa_key("tss-node").public_key(),
        private_key=rsa_key("tss-ours"),
        event_public_key=rsa_key("tss-events").public_key(),
    )
    return _with(settings, cobo_tss=config)


def _tss(ident: str) -> Callback:
    data = {"request_id": f"ks-{ident}", "request_type": 2, "request_status": 190}
    event = {"event_id": f"ev-{ident}", "event_type": "request.keysign.succeeded", "node_id": "n1", "data": data}
    token = cobo_tss_samples.request_token(event, rsa_key("tss-events"), ttl_s=600)
    body = f"TSS_JWT_MSG={token}".encode()
    return Callback(
        "/cobo/tss-node/v2/event", body, {"Content-Type": "application/x-www-form-urlencoded"}, f"ev-{ident}"
    )


def _tss_ok(a: Answer) -> bool:
    return a.status == 200 and _json(a) == ""


# -- Cobo UCW --------------------------------------------------------------------------------


def _ucw_settings(settings: Settings, standin: WaasStandin | None) -> Settings:
    assert standin is not None
    waas = CoboWaasSettings(
        base_url=standin.base_url,
        api_secret=load_api_secret(standin.api_secret_hex),
        response_public_key=load_public_key(standin.env_public_hex),
        client=FAST_WAAS,
    )
    ucw = CoboUcwSettings(api_keys=(UCW_KEY,), recheck_backoff_s=(0.05, 0.1), horizon_s=60)
    return _with(settings, cobo_waas=waas, cobo_ucw=ucw)


def ucw_request_id(ident: str) -> str:
    return f"tss-{ident}"


def _ucw(ident: str) -> Callback:
    payload = {"tss_request_id": ucw_request_id(ident), "status": 190}
    key = cobo_ucw.idempotency_key(UCW_WALLET, cobo_ucw.parse_tss_callback(payload))
    headers = {"X-API-Key": UCW_KEY, "Content-Type": "application/json"}
    return Callback(f"/api/v1/wallets/{UCW_WALLET}/tss/callback", json.dumps(payload).encode(), headers, key)


def _ucw_ok(a: Answer) -> bool:
    answer = _json(a)
    return a.status == 200 and isinstance(answer, dict) and answer.get("success") is True


def _with(settings: Settings, **providers: Any) -> Settings:
    return dataclasses.replace(settings, providers=dataclasses.replace(settings.providers, **providers))


ASYNC_ROUTES: tuple[AsyncRoute, ...] = (
    AsyncRoute("wyre", _wyre_settings, _wyre, _wyre_ok, lambda a: a.status == 503),
    AsyncRoute(
        "uuwallet",
        _uu_settings,
        _uu,
        lambda a: a.status == 200 and _uu_code(a) == uuwallet.ErrCode.OK,
        lambda a: a.status == 503 and _uu_code(a) == uuwallet.ErrCode.UNAVAILABLE,
    ),
    AsyncRoute(
        "chainup_waas",
        _chainup_settings,
        _chainup,
        lambda a: a == Answer(200, b"SUCCESS"),
        lambda a: a == Answer(503, b"FAILURE"),
    ),
    AsyncRoute("cobo_tss", _tss_settings, _tss, _tss_ok, lambda a: a.status == 503 and _json(a) == ""),
    AsyncRoute("cobo_ucw", _ucw_settings, _ucw, _ucw_ok, lambda a: a.status == 503, needs_waas=True),
)


async def build_all(route: AsyncRoute, idents: list[str]) -> list[Callback]:
    """Sign/encrypt the callbacks off the event loop (the client's crypto is not the test)."""
    return await asyncio.to_thread(lambda: [route.build(i) for i in idents])
