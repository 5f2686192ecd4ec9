"""Cobo TSS Node callback server v2: the request inside the token, and the signed answer.

Wire format (protocols/cobo.md A.2-A.4): the node posts a form field `TSS_JWT_MSG` holding an
RS256 JWT whose `package_data` claim is standard base64 of the request JSON
`{request_id, request_type, request_detail, extra_info}`; the last two are JSON *strings*.
Our answer uses the same layout around `{request_id, status, action, error}`.

Tolerance, point by point ([I] = inferred, [U] = unknown in the protocol notes):
- [I] `package_data` as the carrier (the docs say "payload"; every template uses the claim).
  Padding in `package_data` is optional on input; we always send it padded.
- [U] the exact ping JSON: the docs say `request_id`/`request_detail`/`extra_info` are "empty"
  (empty strings or empty objects); for a ping we accept missing, null, "" and {}.
- [I] `request_detail`/`extra_info` are JSON strings; an already-decoded object is accepted too.
- Unknown `request_type` values (4, 6, ...) parse into a request with `detail=None`, which is
  answered REJECT with a reason rather than an error, so a new node version fails closed.
- Descriptive fields of `extra_info` are optional: only what a decision uses is read, and
  unknown fields are ignored (the WaaS `Transaction` model grows often).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from shared.errors import InvalidInput
from shared.policy.model import Action
from shared.providers import cobo_tss_fields as f
from shared.providers.cobo_tss_fields import (
    ExtraInfo,
    KeyGenDetail,
    KeyShareSignDetail,
    KeySignDetail,
    ReshareDetail,
)

PROVIDER = "cobo_tss"
FORM_FIELD = "TSS_JWT_MSG"
_MAX_ERROR_CHARS = 500


class RequestType(enum.IntEnum):
    PING = 0
    KEYGEN = 1
    KEYSIGN = 2
    RESHARE = 3
    KEYSHARESIGN = 5


class ResponseStatus(enum.IntEnum):
    """Status codes of the official templates: 0 is success, anything else a server-side error."""

    OK = 0
    INVALID_REQUEST = 10
    INVALID_TOKEN = 20
    INTERNAL_ERROR = 30


Detail = KeyGenDetail | KeySignDetail | ReshareDetail | KeyShareSignDetail


@dataclass(frozen=True, slots=True)
class CoboTssRequest:
    """A parsed callback request; `detail` is None for a ping and for an unsupported type."""

    request_id: str
    request_type: int  # kept as int: an unknown type must survive parsing to be rejected
    detail: Detail | None
    extra: ExtraInfo

    @property
    def supported(self) -> bool:
        return self.request_type in RequestType._value2member_map_

    @property
    def type_label(self) -> str:
        """A bounded label for metrics and audit: the type's name or `unsupported`."""
        return RequestType(self.request_type).name.lower() if self.supported else "unsupported"


@dataclass(frozen=True, slots=True)
class CoboTssResponse:
    request_id: str
    status: ResponseStatus
    action: Action
    error: str = ""


_DETAIL_PARSERS = {
    RequestType.KEYGEN: f.parse_keygen_detail,
    RequestType.KEYSIGN: f.parse_keysign_detail,
    RequestType.RESHARE: f.parse_reshare_detail,
    RequestType.KEYSHARESIGN: f.parse_keysharesign_detail,
}


def decode_package_data(claims: dict[str, Any]) -> dict[str, Any]:
    """Base64-decode the `package_data` claim of verified token claims into a JSON object."""
    raw = claims.get("package_data")
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("package_data", "missing or not a string")
    try:
        decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        value = orjson.loads(decoded)
    except (binascii.Error, ValueError):
        raise InvalidInput("package_data", "not base64 of JSON") from None
    if not isinstance(value, dict):
        raise InvalidInput("package_data", "not a JSON object")
    return value


def parse_request(data: object) -> CoboTssRequest:
    """Parse the decoded `package_data` object into a typed request, or raise InvalidInput."""
    if not isinstance(data, dict):
        raise InvalidInput("package_data", "not a JSON object")
    request_type = data.get("request_type")
    if isinstance(request_type, bool) or not isinstance(request_type, int):
        raise InvalidInput("request_type", "missing or not an integer")
    if request_type == RequestType.PING:
        return CoboTssRequest(_ping_id(data.get("request_id")), request_type, None, ExtraInfo())
    request_id = f.text(data, "request_id", "package_data", required=True)
    if not request_id:
        raise InvalidInput("request_id", "empty")
    parser = _DETAIL_PARSERS.get(request_type)  # type: ignore[call-overload]
    if parser is None:
        return CoboTssRequest(request_id, request_type, None, ExtraInfo())
    detail = parser(_embedded_json(data, "request_detail"))
    try:
        extra = f.parse_extra_info(_embedded_json(data, "extra_info"))
    except f.InexactAmount:
        extra = f.parse_extra_info(_embedded_json(data, "extra_info", exact=True))
    return CoboTssRequest(request_id, request_type, detail, extra)


def fingerprint(request: CoboTssRequest) -> str:
    """A canonical hash of what a decision depends on, for the same-request-id replay check.

    It covers the type, the whole typed detail (hashes, nodes, thresholds) and the extracted
    extra info (wallet, chain, token, destination, amount, raw transaction), but not volatile
    descriptive fields (statuses, timestamps) that the node may legitimately change on a retry.
    """
    canonical = orjson.dumps(request, default=_canonical_default, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def response_claims(response: CoboTssResponse, *, issuer: str, ttl_minutes: float, now: float) -> dict[str, Any]:
    """The claims of our answer token: `package_data` (padded base64 JSON), `exp`, `iss`."""
    body = {
        "request_id": response.request_id,
        "status": int(response.status),
        "action": response.action.value,
        "error": response.error[:_MAX_ERROR_CHARS],
    }
    package = base64.b64encode(orjson.dumps(body)).decode("ascii")
    return {"package_data": package, "exp": int(now + ttl_minutes * 60), "iss": issuer}


def _ping_id(value: object) -> str:
    return value if isinstance(value, str) else ""


def _embedded_json(data: dict[str, Any], name: str, *, exact: bool = False) -> dict[str, Any]:
    value = data.get(name)
    if isinstance(value, str):
        value = _decode(value, name, exact=exact)
    if not isinstance(value, dict) or not value:
        raise InvalidInput(name, "missing, empty or not a JSON object")
    return value


def _decode(text: str, name: str, *, exact: bool) -> object:
    # orjson first (3x faster); stdlib json with Decimal when an amount came as a JSON number
    # (a float must never touch an amount) or when orjson refuses what stdlib may accept
    # (integers beyond 64 bits).
    if not exact:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidInput(name, "not a JSON string") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _canonical_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(type(value).__name__)
