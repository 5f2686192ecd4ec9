"""Wyre v3 wallet callbacks: authentication and the transaction codec.

Wyre posts the transaction JSON once and never retries (protocols/chainup_wyre.md §3.1), so the
gateway must not lose anything it answers 200 to. Authentication is a secret path token plus,
when configured, `X-Api-Signature`: hex HMAC-SHA256 of the raw body. The signature header is
[I] inferred from Wyre's legacy v2 docs (§3.2): we accept upper- or lower-case hex and require it
only when a signing secret is configured.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from shared.errors import InvalidInput, Unauthorized

PROVIDER = "wyre"
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class WyreTransaction:
    """The fields callgate relies on; the stored payload keeps every field, unknown ones too."""

    id: str
    status: str
    created_at: int
    source: str
    dest: str
    currency: str
    amount: Decimal
    fees: Decimal | None
    confirmed_at: int | None
    metadata: dict[str, Any]

    @property
    def idempotency_key(self) -> str:
        # [I] §3.1: the same id arrives as PENDING, then CONFIRMED; each is its own event.
        return f"{self.id}:{self.status}"

    @property
    def kind(self) -> str:
        return f"transaction.{self.status.lower()}"


def check_path_token(given: str, expected: str) -> None:
    """Constant-time comparison of the secret path segment."""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("wrong path token")


def check_signature(body: bytes, header: str | None, secret: str) -> None:
    """Verify `X-Api-Signature` (hex HMAC-SHA256 of the raw body) before anything is parsed."""
    if not header:
        raise Unauthorized("missing X-Api-Signature")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.strip().lower().encode(), expected.encode()):
        raise Unauthorized("bad X-Api-Signature")


def sign(body: bytes, secret: str) -> str:
    """The signature a sender puts on a body (used by `callgate demo` and the tests)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_body(body: bytes) -> WyreTransaction:
    """Decode and validate a callback body; raises InvalidInput naming the bad field."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("body", "not valid JSON") from None
    return parse_transaction(data)


def parse_transaction(data: object) -> WyreTransaction:
    if not isinstance(data, dict):
        raise InvalidInput("body", "expected a JSON object")
    return WyreTransaction(
        id=_text(data, "id", max_length=MAX_ID_LENGTH),
        status=_text(data, "status", max_length=32).upper(),
        created_at=_epoch_ms(data, "createdAt", required=True) or 0,
        source=_text(data, "source"),
        dest=_text(data, "dest"),
        currency=_text(data, "currency", max_length=32),
        amount=_amount(data, "amount", required=True) or Decimal(0),
        fees=_amount(data, "fees", required=False),
        confirmed_at=_epoch_ms(data, "confirmedAt", required=False),
        metadata=_metadata(data),
    )


def _text(data: dict[str, Any], name: str, *, max_length: int = MAX_TEXT_LENGTH) -> str:
    value = data.get(name)
    if value is None:
        raise InvalidInput(name, "required")
    if not isinstance(value, str):
        raise InvalidInput(name, "expected a string")
    if not value or len(value) > max_length:
        raise InvalidInput(name, f"length must be 1..{max_length}")
    return value


def _epoch_ms(data: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(name, "required")
        return None
    # bool is an int subclass in Python; a JSON true is not a timestamp.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**14:
        raise InvalidInput(name, "expected epoch milliseconds")
    return value


def _amount(data: dict[str, Any], name: str, *, required: bool) -> Decimal | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidInput(name, "required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(name, "expected a number")
    # Wyre sends JSON numbers. The stored payload keeps the exact text of the body; here the
    # shortest decimal that round-trips the parsed double is exact for every amount Wyre shows.
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise InvalidInput(name, "must be a finite, non-negative number")
    return amount


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("metadata", "expected an object")
    return value
