"""Standard Webhooks signing (https://www.standardwebhooks.com/): what receivers verify.

`webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256(id.timestamp.body)>`,
one per secret still valid, so a receiver can rotate secrets without a gap.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from shared.errors import InvalidInput

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
# The spec asks for 24-64 random bytes; 32 is what the reference libraries generate.
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh `whsec_` secret (32 random bytes, base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret; InvalidInput when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidInput("secret", f"must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("secret", "not base64 after the whsec_ prefix") from None
    if not 24 <= len(key) <= 64:
        raise InvalidInput("secret", f"{len(key)} bytes; Standard Webhooks asks for 24 to 64")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `id.timestamp.body`."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(msg_id: str, timestamp: int, body: bytes, keys: Sequence[bytes]) -> dict[str, str]:
    """The three Standard Webhooks headers, signed by every key given (current first)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(k, msg_id, timestamp, body) for k in keys),
    }
