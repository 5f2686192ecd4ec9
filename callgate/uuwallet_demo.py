"""`callgate demo` samples for UU Wallet WaaS callbacks.

Playing the WaaS takes the private half of its key pair, which a real WaaS never hands out: point
`CALLGATE_UUWALLET_DEMO_PRIVATE_KEY_FILE` at the private key of a *test* pair whose public half
is `CALLGATE_UUWALLET_PUBLIC_KEY_FILE`. With it the demo sends a deposit (then its retry, a
duplicate), a withdrawal result, a type 0 and a second confirmation for an order it registers
first; without it, only the refusals (bad key, undecryptable body).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from decimal import Decimal

import aiohttp
import orjson

from shared import rsablocks
from shared.config import Settings, UuWalletSettings
from shared.db import create_pool
from shared.keys import RedisKeys
from shared.orders import register
from shared.policy.model import ExpectedOrder
from shared.providers.uuwallet_samples import (
    DEPOSIT,
    REQUEST_WITHDRAW,
    WITHDRAW,
    decrypt_as_waas,
    encrypt_as_waas,
    with_new_request_uuid,
)
from shared.redis import create_redis

ORDER_TTL_S = 600


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, key: str) -> tuple[int, dict[str, object]]:
    headers = {"X-API-KEY": key, "Content-Type": "application/x-www-form-urlencoded"}
    async with session.post(url, data=body, headers=headers) as response:
        answer = orjson.loads(await response.read() or b"{}")
        return response.status, answer if isinstance(answer, dict) else {}


def _line(label: str, status: int, answer: Mapping[str, object], private: rsablocks.RsaPrivate | None) -> str:
    data = answer.get("data")
    shown = decrypt_as_waas(data, private) if private is not None and isinstance(data, str) and data else ""
    return f"uuwallet {label}: {status} errCode={answer.get('errCode')} {answer.get('message') or ''} {shown}".rstrip()


async def _register_order(settings: Settings, call_back_id: str) -> None:
    pool = await create_pool(settings.database_url, min_size=0, max_size=1)
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    order = ExpectedOrder(
        provider="uuwallet",
        order_ref=call_back_id,
        chain="TRON",
        asset="USDT",
        destination=str(WITHDRAW["toAddress"]),
        amount=Decimal("3.3"),
        expires_at=time.time() + ORDER_TTL_S,
        extras=(("tenantUserId", str(REQUEST_WITHDRAW["tenantUserId"])),),
    )
    try:
        await register(pool, redis, RedisKeys(settings.key_prefix), order)
    finally:
        await pool.close()
        await redis.aclose()


def _samples(call_back_id: str) -> list[tuple[str, str, dict[str, object]]]:
    deposit = with_new_request_uuid(DEPOSIT, txId=uuid.uuid4().hex * 2)
    return [
        ("deposit", "callback", deposit),
        ("deposit retried", "callback", with_new_request_uuid(deposit)),
        ("withdrawal result", "callback", with_new_request_uuid(WITHDRAW, txId=uuid.uuid4().hex * 2)),
        ("type 0", "callback", {"type": 0, "requestUUID": str(uuid.uuid4()), "tenantUserId": "demo"}),
        ("second confirmation", "withdraw-info", with_new_request_uuid(REQUEST_WITHDRAW, callBackId=call_back_id)),
    ]


async def send_uuwallet(settings: Settings, session: aiohttp.ClientSession, base_url: str) -> list[str]:
    """Post sample UU Wallet callbacks and refusals; one printable line per request."""
    config = settings.providers.uuwallet
    assert config is not None
    key = config.api_keys[0]
    lines = []
    status, answer = await _post(session, f"{base_url}/uuwallet/callback", b"bm90IGEgY2lwaGVydGV4dA==", key)
    lines.append(_line("undecryptable body", status, answer, None))
    status, answer = await _post(session, f"{base_url}/uuwallet/callback", b"", "not-a-configured-key")
    lines.append(_line("bad key", status, answer, None))
    private = _demo_key(config)
    if private is None:
        lines.append("uuwallet: set CALLGATE_UUWALLET_DEMO_PRIVATE_KEY_FILE (a test WaaS key) for the other samples")
        return lines
    call_back_id = "demo-" + uuid.uuid4().hex[:12]
    await _register_order(settings, call_back_id)
    for label, path, payload in _samples(call_back_id):
        status, answer = await _post(session, f"{base_url}/uuwallet/{path}", encrypt_as_waas(payload, private), key)
        lines.append(_line(label, status, answer, private))
    return lines


def _demo_key(config: UuWalletSettings) -> rsablocks.RsaPrivate | None:
    if config.demo_private_key_file is None:
        return None
    with open(config.demo_private_key_file, "rb") as f:
        return rsablocks.load_private_key(f.read())
