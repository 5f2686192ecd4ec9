"""`callgate demo` samples for ChainUp: the MPC Co-Signer and Custody WaaS V2.

Co-signer samples need nothing secret beyond the optional token: a withdrawal `sign_start` (then
its retry, answered from memory), a Web3 unlimited approval, a `sign_success` and the
`verify_public_hash` self-check. Playing ChainUp's WaaS takes the private half of its key pair,
which ChainUp never hands out: point `CALLGATE_CHAINUP_DEMO_PRIVATE_KEY_FILE` at the private key
of a *test* pair whose public half is `CALLGATE_CHAINUP_PUBLIC_KEY_FILE`. With it the demo sends
a deposit (twice), a withdrawal result and a second confirmation for an order it registers
first; without it, only the refusals (an unknown app id, a forged notification).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import rsablocks
from shared.config import ChainupWaasSettings, Settings
from shared.db import create_pool
from shared.keys import RedisKeys
from shared.orders import register
from shared.providers import chainup_samples as samples
from shared.providers.chainup_cosigner import public_key_hash
from shared.redis import create_redis

ORDER_TTL_S = 600
REPLICA_WAIT_S = 0.5
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> str:
    async with session.post(url, data=body, headers=headers) as response:
        return f"{response.status} {(await response.text())[:160]}"


async def send_chainup_cosigner(settings: Settings, session: aiohttp.ClientSession, base_url: str) -> list[str]:
    """Post sample co-signer callbacks; one printable line per request."""
    config = settings.providers.chainup_cosigner
    assert config is not None
    headers = {"Content-Type": "application/json", **({"X-Callgate-Token": config.token} if config.token else {})}
    request_id = "demo-" + uuid.uuid4().hex[:12]
    withdraw = samples.cosigner_body(samples.COSIGNER_WITHDRAW, request_id=request_id)
    web3 = samples.cosigner_body(samples.COSIGNER_WEB3, request_id=request_id, amount="-1")
    success = samples.cosigner_body(
        samples.COSIGNER_WEB3, request_id=request_id, type="sign_success", txid="0x" + "ab" * 32
    )
    app_id = config.app_id or "demo-app"
    check = {
        "type": "verify_public_hash",
        "app_id": app_id,
        "client_system_pubkey_hash": public_key_hash(app_id, config.client_system_public_key_pem or ""),
        "verify_sign_pub_hash": "",
    }
    sends: list[tuple[str, str, bytes]] = [
        ("withdraw sign_start", "withdraw", withdraw),
        ("withdraw sign_start retried", "withdraw", withdraw),
        ("web3 unlimited approval", "web3", web3),
        ("web3 sign_success", "web3", success),
        ("verify_public_hash", "withdraw", json.dumps(check).encode()),
    ]
    return [
        f"chainup_cosigner {label}: " + await _post(session, f"{base_url}/chainup/cosigner/{path}", body, headers)
        for label, path, body in sends
    ]


async def send_chainup_waas(settings: Settings, session: aiohttp.ClientSession, base_url: str) -> list[str]:
    """Post sample WaaS V2 notifications and a second confirmation; one line per request."""
    config = settings.providers.chainup_waas
    assert config is not None
    notify, confirm = f"{base_url}/chainup/waas/notify", f"{base_url}/chainup/waas/withdraw-confirm"
    throwaway = rsablocks.private_from_crypto(_throwaway_key())
    forged = samples.encrypt_as_chainup(samples.WAAS_DEPOSIT, throwaway)
    lines = [
        "chainup_waas unknown app_id: " + await _post(session, notify, samples.waas_form("not-us", forged), FORM),
        "chainup_waas forged notification: "
        + await _post(session, notify, samples.waas_form(config.app_id, forged), FORM),
    ]
    private = _demo_key(config)
    if private is None:
        lines.append(
            "chainup_waas: set CALLGATE_CHAINUP_DEMO_PRIVATE_KEY_FILE (a test ChainUp key) for the other samples"
        )
        return lines
    order_ref = "demo-" + uuid.uuid4().hex[:12]
    await _register_order(settings, order_ref)
    await asyncio.sleep(REPLICA_WAIT_S)  # the gateways' replicas see a new order within a second
    deposit = {**samples.WAAS_DEPOSIT, "id": str(uuid.uuid4().int % 10**9)}
    sends: list[tuple[str, str, dict[str, Any]]] = [
        ("deposit", notify, deposit),
        ("deposit retried", notify, deposit),
        ("withdrawal result", notify, {**samples.WAAS_WITHDRAW, "request_id": order_ref}),
        ("second confirmation", confirm, {**samples.WAAS_CONFIRM, "request_id": order_ref}),
    ]
    for label, url, payload in sends:
        body = samples.waas_form(config.app_id, samples.encrypt_as_chainup(payload, private))
        lines.append(f"chainup_waas {label}: " + await _post(session, url, body, FORM))
    return lines


def _throwaway_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _demo_key(config: ChainupWaasSettings) -> rsablocks.RsaPrivate | None:
    if config.demo_private_key_file is None:
        return None
    with open(config.demo_private_key_file, "rb") as f:
        return rsablocks.load_private_key(f.read())


async def _register_order(settings: Settings, order_ref: str) -> None:
    pool = await create_pool(settings.database_url, min_size=0, max_size=1)
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    order = samples.waas_confirm_order(order_ref, expires_at=time.time() + ORDER_TTL_S)
    try:
        await register(pool, redis, RedisKeys(settings.key_prefix), order)
    finally:
        await pool.close()
        await redis.aclose()
