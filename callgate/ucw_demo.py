"""`callgate demo` samples for the Cobo UCW TSS request callback.

The demo registers a throw-away demo wallet (Postgres + the gateway's Redis replica) pointing at
vault `demo-vault`, then reports one TSS request twice (Approving, then Completed, then Completed
again: a duplicate) and shows the refusals (bad key, unknown wallet, invalid body). WaaS webhooks
have no demo: only Cobo holds the key that signs them.
"""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg

from shared.config import Settings
from shared.keys import RedisKeys
from shared.providers.cobo_ucw_store import add_wallet
from shared.redis import create_redis

DEMO_VAULT = "demo-vault"


async def _register(settings: Settings, wallet: str) -> None:
    conn = await asyncpg.connect(settings.database_url)
    redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_seconds)
    try:
        await add_wallet(conn, redis, RedisKeys(settings.key_prefix), wallet, DEMO_VAULT)
    finally:
        await conn.close()
        await redis.aclose()


async def send_cobo_ucw(settings: Settings, session: aiohttp.ClientSession, base_url: str) -> list[str]:
    """Post sample UCW reports and refusals; one printable line per request."""
    config = settings.providers.cobo_ucw
    assert config is not None
    wallet = str(uuid.uuid4())
    await _register(settings, wallet)
    request_id = "demo" + uuid.uuid4().hex[:16]
    good = {"X-API-Key": config.api_keys[0]}
    samples: list[tuple[str, str, dict[str, str], object]] = [
        ("approving", wallet, good, {"tss_request_id": request_id, "status": 130}),
        ("completed", wallet, good, {"tss_request_id": request_id, "status": 190}),
        ("completed again", wallet, good, {"tss_request_id": request_id, "status": 190}),
        ("bad key", wallet, {"X-API-Key": "not-a-configured-key"}, {"tss_request_id": request_id, "status": 190}),
        ("unknown wallet", str(uuid.uuid4()), good, {"tss_request_id": request_id, "status": 190}),
        ("invalid body", wallet, good, {"tss_request_id": request_id, "status": "Completed"}),
    ]
    lines = []
    for label, target, headers, body in samples:
        async with session.post(f"{base_url}/api/v1/wallets/{target}/tss/callback", json=body, headers=headers) as r:
            lines.append(f"cobo_ucw {request_id} {label}: {r.status} {(await r.text())[:160]}")
    return lines
