"""Compact RS256 JWS, verified and signed with `cryptography` directly.

Why not a general JWT library: the Cobo TSS Node protocol needs exactly one algorithm, and a
general library's algorithm negotiation is where `none` and HS256-with-the-public-key attacks
live. Keys are loaded by `shared.config` (SPKI public, PKCS#1 or PKCS#8 private, any size).
Here the header must say `RS256`, the key is always an RSA public key, and nothing in the
token chooses how it is verified. The signature is checked on the exact `header.payload` bytes
received, before any claim is looked at.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared.errors import Unauthorized

_ALG = "RS256"
_MAX_TOKEN_CHARS = 4 * 1024 * 1024
# We always send the same header, so it is encoded once.
_HEADER_B64 = base64.urlsafe_b64encode(orjson.dumps({"alg": _ALG, "typ": "JWT"})).rstrip(b"=")
_PADDING = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class TokenRejected(Unauthorized):
    """A token failed verification; `code` is a bounded label for metrics (`expired`, `bad_signature`, ...)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class VerifyOptions:
    """How strict `verify_rs256` is about time: `leeway_s` absorbs clock skew between hosts."""

    leeway_s: float = 30.0
    require_exp: bool = True


def sign_rs256(claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    """Encode `claims` as a compact RS256 JWS signed with `key`."""
    data = signing_input(claims)
    return compact(data, rs256_signature(data, key))


def signing_input(claims: dict[str, Any]) -> bytes:
    """The `header.payload` bytes of an RS256 JWS of `claims` (what the signature covers)."""
    return _HEADER_B64 + b"." + base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=")


def rs256_signature(data: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 over `data`: the one costly step, done wherever it is cheapest."""
    return key.sign(data, _PADDING, _SHA256)


def compact(data: bytes, signature: bytes) -> str:
    """The compact JWS of a signing input and its signature."""
    return (data + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode("ascii")


def verify_rs256(
    token: str, key: rsa.RSAPublicKey, *, options: VerifyOptions = VerifyOptions(), now: float | None = None
) -> dict[str, Any]:
    """Verify a compact RS256 JWS and its time claims; return the claims or raise TokenRejected."""
    signing_input, header, payload, signature = _split(token)
    if header.get("alg") != _ALG:
        raise TokenRejected("alg_not_allowed", f"alg {str(header.get('alg'))[:20]!r} is not RS256")
    if "crit" in header:
        raise TokenRejected("bad_header", "critical header extensions are not supported")
    try:
        key.verify(signature, signing_input, _PADDING, _SHA256)
    except InvalidSignature:
        raise TokenRejected("bad_signature", "signature does not verify with the configured key") from None
    claims = _json_object(payload, "payload")
    _check_times(claims, options, time.time() if now is None else now)
    return claims


def _split(token: str) -> tuple[bytes, dict[str, Any], bytes, bytes]:
    if len(token) > _MAX_TOKEN_CHARS:
        raise TokenRejected("malformed", "token too long")
    try:
        raw = token.strip().encode("ascii")
    except UnicodeEncodeError:
        raise TokenRejected("malformed", "token is not ASCII") from None
    parts = raw.split(b".")
    if len(parts) != 3:
        raise TokenRejected("malformed", f"expected 3 dot-separated parts, got {len(parts)}")
    header = _json_object(_b64url(parts[0], "header"), "header")
    return parts[0] + b"." + parts[1], header, _b64url(parts[1], "payload"), _b64url(parts[2], "signature")


def _b64url(part: bytes, what: str) -> bytes:
    # Strict alphabet (a plain urlsafe_b64decode would silently skip junk characters); padding
    # is optional because RFC 7515 omits it but some encoders keep it.
    part = part.rstrip(b"=")
    try:
        return base64.b64decode(part + b"=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise TokenRejected("malformed", f"{what} is not base64url") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TokenRejected("malformed", f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise TokenRejected("malformed", f"{what} is not a JSON object")
    return value


def _check_times(claims: dict[str, Any], options: VerifyOptions, now: float) -> None:
    exp = _numeric_date(claims, "exp")
    if exp is None:
        if options.require_exp:
            raise TokenRejected("missing_exp", "the token has no exp claim")
    elif now > exp + options.leeway_s:
        raise TokenRejected("expired", f"expired {now - exp:.0f}s ago")
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and now < nbf - options.leeway_s:
        raise TokenRejected("not_yet_valid", "nbf is in the future")


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRejected("bad_claims", f"{name} is not a number")
    return float(value)
