"""Cobo Auth (WaaS 2.0): request signing, API response signatures and webhook signatures.

Every signature Cobo uses in WaaS 2.0 is Ed25519 over a double SHA-256 digest:

- requests we send: ``sha256(sha256("METHOD|PATH|NONCE|PARAMS|BODY"))`` signed with our API secret
  (the 32-byte Ed25519 seed), sent as ``Biz-Api-Key`` / ``Biz-Api-Nonce`` / ``Biz-Api-Signature``;
- responses and webhooks Cobo sends: ``sha256(sha256(body + "|" + timestamp))`` signed with the
  environment key, sent as ``Biz-Timestamp`` / ``Biz-Resp-Signature``.

Source: cobo-waas2 1.46.0 ``crypto/signing_helper.py`` and ``api_client.py``; protocols/cobo.md B.3-B.5.
The module is pure: no I/O, no clock except where a nonce is minted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from shared.errors import Unauthorized

__all__ = [
    "ENVIRONMENTS",
    "CoboEnvironment",
    "double_sha256",
    "load_api_secret",
    "load_public_key",
    "public_key_hex",
    "request_headers",
    "string_to_sign",
    "verify_response",
    "verify_webhook",
]


class CoboEnvironment(StrEnum):
    """The three public WaaS 2.0 environments."""

    DEV = "dev"
    PROD = "prod"
    SANDBOX = "sandbox"


@dataclass(frozen=True, slots=True)
class EnvironmentInfo:
    """Where an environment lives and which key signs its responses and webhooks."""

    base_url: str
    response_public_key: str


# [V] sdk configuration.py (`get_host_settings`, `resp_pubkey`); protocols/cobo.md B.1 and B.4.
ENVIRONMENTS: Mapping[CoboEnvironment, EnvironmentInfo] = {
    CoboEnvironment.DEV: EnvironmentInfo(
        "https://api.dev.cobo.com/v2", "a04ea1d5fa8da71f1dcfccf972b9c4eba0a2d8aba1f6da26f49977b08a0d2718"
    ),
    CoboEnvironment.PROD: EnvironmentInfo(
        "https://api.cobo.com/v2", "8d4a482641adb2a34b726f05827dba9a9653e5857469b8749052bf4458a86729"
    ),
    CoboEnvironment.SANDBOX: EnvironmentInfo(
        "https://api.sandbox.cobo.com/v2", "893d8a6112ae22429a7453599256391d7928e16870ecab888ee3ce65febada08"
    ),
}

# Cobo documents the underscore spellings, cobo-cli says both are sent, and reverse proxies such as
# nginx drop underscore headers by default: accept either (protocols/cobo.md B.5 [I]).
_TIMESTAMP_HEADERS = ("Biz-Timestamp", "Biz_Timestamp")
_SIGNATURE_HEADERS = ("Biz-Resp-Signature", "Biz_Resp_Signature")
# An Ed25519 signature is 64 bytes; anything longer is not worth hex-decoding.
_SIGNATURE_HEX_LEN = 128
_TIMESTAMP_MAX_LEN = 32


def double_sha256(data: bytes) -> bytes:
    """Return sha256(sha256(data)), the digest every Cobo Auth signature covers."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def load_api_secret(secret_hex: str) -> Ed25519PrivateKey:
    """Build the signing key from the API secret (hex of the 32-byte Ed25519 seed); ValueError if malformed."""
    seed = bytes.fromhex(secret_hex.strip())
    if len(seed) != 32:
        raise ValueError("an Ed25519 API secret is 32 bytes (64 hex characters)")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_public_key(public_hex: str) -> Ed25519PublicKey:
    """Build a verification key from 64 hex characters; ValueError if malformed."""
    raw = bytes.fromhex(public_hex.strip())
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes (64 hex characters)")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_hex(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The hex form Cobo uses for an Ed25519 public key (the `Biz-Api-Key` value)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def string_to_sign(method: str, path: str, nonce: str, params: str, body: bytes) -> bytes:
    """The Cobo Auth message `METHOD|PATH|NONCE|PARAMS|BODY`.

    `path` is the full URL path including `/v2`; `params` is the URL-encoded query string exactly as
    sent (empty when there is none); `body` is the exact body bytes sent (empty for GET).
    """
    head = "|".join((method.upper(), path, nonce, params)).encode()
    return head + b"|" + body


def request_headers(
    secret: Ed25519PrivateKey,
    method: str,
    path: str,
    *,
    params: str = "",
    body: bytes = b"",
    nonce: str | None = None,
) -> dict[str, str]:
    """Sign one request and return the three `Biz-Api-*` headers.

    The nonce is the current Unix time in milliseconds unless given (tests pin it).
    """
    nonce = nonce if nonce is not None else str(time.time_ns() // 1_000_000)
    digest = double_sha256(string_to_sign(method, path, nonce, params, body))
    return {
        "Biz-Api-Key": public_key_hex(secret),
        "Biz-Api-Nonce": nonce,
        "Biz-Api-Signature": secret.sign(digest).hex(),
    }


def _signed_by(key: Ed25519PublicKey, body: bytes, timestamp: str, signature_hex: str) -> bool:
    if len(signature_hex) != _SIGNATURE_HEX_LEN or len(timestamp) > _TIMESTAMP_MAX_LEN:
        return False
    try:
        signature = bytes.fromhex(signature_hex)
        key.verify(signature, double_sha256(body + b"|" + timestamp.encode()))
    except (ValueError, InvalidSignature, UnicodeEncodeError):
        return False
    return True


def _first_header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    # Header names are case-insensitive; aiohttp's CIMultiDict knows it, a plain Mapping may not.
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value:
            return value
    return None


def verify_response(key: Ed25519PublicKey, headers: Mapping[str, str], body: bytes) -> None:
    """Check an API response's `Biz-Timestamp` / `Biz-Resp-Signature` over the exact body bytes.

    Raises Unauthorized when either header is missing or the signature does not verify: like the
    official SDK, a 2xx answer without a valid signature is never trusted.
    """
    timestamp = _first_header(headers, _TIMESTAMP_HEADERS[:1])
    signature = _first_header(headers, _SIGNATURE_HEADERS[:1])
    if not timestamp or not signature:
        raise Unauthorized("response is not signed (Biz-Timestamp / Biz-Resp-Signature missing)")
    if not _signed_by(key, body, timestamp, signature):
        raise Unauthorized("response signature does not verify")


def verify_webhook(key: Ed25519PublicKey, headers: Mapping[str, str], raw_body: bytes) -> str:
    """Check a WaaS 2.0 webhook or callback signature (`raw_body|timestamp`) and return the timestamp.

    Both header spellings are read (`BIZ_TIMESTAMP` / `BIZ-TIMESTAMP`, `BIZ_RESP_SIGNATURE` /
    `BIZ-RESP-SIGNATURE`). No freshness window is enforced: Cobo documents none, and a replayed
    webhook only triggers another read of the WaaS state, which is the truth anyway.
    """
    timestamp = _first_header(headers, _TIMESTAMP_HEADERS)
    signature = _first_header(headers, _SIGNATURE_HEADERS)
    if not timestamp or not signature:
        raise Unauthorized("webhook is not signed (BIZ_TIMESTAMP / BIZ_RESP_SIGNATURE missing)")
    if not _signed_by(key, raw_body, timestamp, signature):
        raise Unauthorized("webhook signature does not verify")
    return timestamp
