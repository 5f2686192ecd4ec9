"""`callgate demo`: send correctly signed sample callbacks of every enabled provider.

Each provider adds one sender to `SENDERS`; a sender posts its samples to a running gateway and
returns one printable line per request.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import orjson

from callgate.chainup_demo import send_chainup_cosigner, send_chainup_waas
from callgate.cobo_tss_demo import send_cobo_tss
from callgate.ucw_demo import send_cobo_ucw
from callgate.uuwallet_demo import send_uuwallet
from shared.config import Settings
from shared.providers import wyre

Sender = Callable[[Settings, aiohttp.ClientSession, str], Awaitable[list[str]]]


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> str:
    async with session.post(url, data=body, headers=headers) as response:
        text = await response.text()
        return f"{response.status} {text[:160]}"


def wyre_transaction(status: str, tx_id: str) -> bytes:
    now = int(time.time() * 1000)
    return orjson.dumps(
        {
            "createdAt": now,
            "id": tx_id,
            "source": "bitcoin:EXTERNAL",
            "dest": "wallet:WA_DEMO0000000",
            "currency": "BTC",
            "amount": 0.01653538,
            "status": status,
            "confirmedAt": now if status == "CONFIRMED" else None,
            "cancelledAt": None,
            "reversedAt": None,
            "message": None,
            "allowOverdraft": True,
            "authorizer": None,
            "senderProvidedId": None,
            "reversedBy": None,
            "fees": 0,
            "feesDest": None,
            "metadata": {"BTCNetworkTxId": uuid.uuid4().hex * 2},
            "tags": [],
            "destFees": None,
            "sourceFees": None,
        }
    )


async def send_wyre(settings: Settings, session: aiohttp.ClientSession, base_url: str) -> list[str]:
    config = settings.providers.wyre
    assert config is not None
    url = f"{base_url}/wyre/v3/wallet-callbacks/{config.path_token}"
    tx_id = "TR_" + uuid.uuid4().hex[:11].upper()
    lines = []
    for label, status in (("pending", "PENDING"), ("confirmed", "CONFIRMED"), ("confirmed again", "CONFIRMED")):
        body = wyre_transaction(status, tx_id)
        headers = {"Content-Type": "application/json"}
        if config.signing_secret:
            headers["X-Api-Signature"] = wyre.sign(body, config.signing_secret)
        lines.append(f"wyre {tx_id} {label}: " + await _post(session, url, body, headers))
    return lines


SENDERS: dict[str, Sender] = {
    "wyre": send_wyre,
    # >>> demo senders (provider: sender)
    "cobo_tss": send_cobo_tss,
    "cobo_ucw": send_cobo_ucw,
    "uuwallet": send_uuwallet,
    "chainup_cosigner": send_chainup_cosigner,
    "chainup_waas": send_chainup_waas,
    # <<< demo senders
}


async def run_demo(settings: Settings, base_url: str) -> list[str]:
    """Send every enabled provider's samples; returns the printable outcome lines."""
    lines: list[str] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        for provider in settings.enabled_providers():
            sender = SENDERS.get(provider)
            if sender is None:
                lines.append(f"{provider}: no demo samples")
                continue
            lines += await sender(settings, session, base_url)
    return lines
