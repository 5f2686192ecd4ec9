"""`callgate demo` samples for the Cobo TSS Node callback server.

Playing the TSS Node takes the private half of its callback key, which a real node never hands
out: point `CALLGATE_COBO_TSS_DEMO_NODE_PRIVATE_KEY_FILE` at the private key of a *test* pair
whose public half is `CALLGATE_COBO_TSS_NODE_PUBLIC_KEY_FILE`. With it the demo sends a ping,
a key generation, an EVM key sign (then its retry, which gets the same answer), the same
request_id with another destination (a replay), and a key sign whose hash is not its raw
transaction's; without it, the health ping and a forged token. Every answer is verified with
our own public key before it is printed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.config import CoboTssSettings, Settings, load_rsa_private_key
from shared.errors import InputError
from shared.providers import cobo_tss_samples as samples

KEY_VARIABLE = "CALLGATE_COBO_TSS_DEMO_NODE_PRIVATE_KEY_FILE"
OTHER = "0x" + "77" * 20


async def send_cobo_tss(settings: Settings, session: aiohttp.ClientSession, base_url: str) -> list[str]:
    config = settings.providers.cobo_tss
    assert config is not None
    async with session.get(f"{base_url}/cobo/tss-node/ping") as response:
        lines = [f"cobo_tss health ping: {response.status} {(await response.text())[:80]}"]
    lines.append("cobo_tss forged token: " + await _check(session, base_url, config, "x.y.z"))
    key_file = os.environ.get(KEY_VARIABLE, "").strip()
    if not key_file:
        return [*lines, f"cobo_tss: set {KEY_VARIABLE} (a test node key pair) to send signed requests"]
    node = _node_key(key_file)
    run = uuid.uuid4().hex[:8]
    for label, package in _packages(run):
        token = samples.request_token(package, node)
        lines.append(f"cobo_tss {label}: " + await _check(session, base_url, config, token))
    return lines


def _node_key(path: str) -> rsa.RSAPrivateKey:
    # A dev-only key file read once per demo run; blocking the loop for it is harmless.
    return load_rsa_private_key(KEY_VARIABLE, Path(path).read_bytes())


def _packages(run: str) -> list[tuple[str, dict[str, Any]]]:
    sign_id = f"demo-{run}-sign"
    return [
        ("ping", samples.ping()),
        ("keygen", samples.keygen(f"demo-{run}-keygen")),
        ("keysign 1.5 ETH", samples.keysign(sign_id)),
        ("keysign retried", samples.keysign(sign_id)),
        (
            "same id, other destination",
            samples.keysign(sign_id, raw_tx=samples.evm_transfer_tx(to=OTHER), destination=OTHER),
        ),
        ("hash list not of its raw tx", samples.keysign(f"demo-{run}-bad", msg_hashes=["0x" + "ab" * 32])),
    ]


async def _check(session: aiohttp.ClientSession, base_url: str, config: CoboTssSettings, token: str) -> str:
    async with session.post(f"{base_url}{config.check_path}", data={"TSS_JWT_MSG": token}) as response:
        text = await response.text()
    try:
        answer = samples.read_response(text, config.private_key.public_key())
    except InputError as e:
        return f"{response.status} not a valid answer signed by our key ({e})"
    error = f" ({answer['error'][:70]})" if answer["error"] else ""
    return f"{response.status} status {answer['status']} {answer['action']}{error}"
