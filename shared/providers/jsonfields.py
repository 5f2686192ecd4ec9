"""Typed readers for the loosely typed JSON that custody providers send.

The same field arrives as a number from one SDK generation and as a digit string from the next
(ChainUp's ids, statuses and timestamps), so the readers accept both and normalise; everything
else is strict: a wrong type, an over-long value or a non-finite amount is an `InvalidInput`
naming the field. Numbers stay exact: `decode_json` never makes a float.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from shared.errors import InvalidInput

Fields = Mapping[object, object]

MAX_TEXT = 512  # ids, addresses, symbols: far below this; bounds what we store and log
_MAX_UINT = 2**63
_UNLIMITED = Decimal(-1)


def _reject_constant(name: str) -> object:
    raise InvalidInput("body", f"{name} is not a JSON number we accept")


def decode_json(raw: bytes, *, field: str = "body") -> object:
    """Decode JSON keeping numbers exact: fractions become `Decimal`, NaN/Infinity are refused."""
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidInput(field, "not valid JSON") from None


def opt_text(data: Fields, name: str, *, limit: int = MAX_TEXT, numbers: bool = False) -> str | None:
    """A trimmed string, or None when absent or blank; with `numbers`, integers are taken as text."""
    value = data.get(name)
    if value is None:
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidInput(name, "expected a string")
    if len(value) > limit:
        raise InvalidInput(name, f"longer than {limit} characters")
    return value.strip() or None


def text(data: Fields, name: str, *, limit: int = MAX_TEXT, numbers: bool = False) -> str:
    """Like `opt_text`, but the field must be present and non-blank."""
    value = opt_text(data, name, limit=limit, numbers=numbers)
    if value is None:
        raise InvalidInput(name, "missing or empty")
    return value


def opt_uint(data: Fields, name: str) -> int | None:
    """A non-negative integer given as a JSON integer or an ASCII digit string; None when absent."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_UINT:
        return value
    if isinstance(value, str):
        stripped = value.strip()
        # The length check first: int() of a 5000-digit string raises ValueError (CPython's limit).
        if stripped.isascii() and stripped.isdigit() and len(stripped) <= 19 and int(stripped) < _MAX_UINT:
            return int(stripped)
    raise InvalidInput(name, "expected a non-negative integer")


def uint(data: Fields, name: str) -> int:
    """Like `opt_uint`, but the field must be present."""
    value = opt_uint(data, name)
    if value is None:
        raise InvalidInput(name, "missing")
    return value


def amount(value: object, name: str, *, allow_unlimited: bool = False) -> Decimal:
    """A non-negative decimal from a JSON number or string (also -1 when `allow_unlimited`).

    Floats are refused: they mean precision was already lost (decode with `decode_json`).
    """
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise InvalidInput(name, "expected a decimal number or string")
    if isinstance(value, str) and len(value) > 80:
        raise InvalidInput(name, "too long")
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise InvalidInput(name, "not a decimal number") from None
    if not result.is_finite() or abs(result.adjusted()) > 40:
        raise InvalidInput(name, "out of range")
    if result < 0 and not (allow_unlimited and result == _UNLIMITED):
        raise InvalidInput(name, "must not be negative")
    return result


def opt_amount(data: Fields, name: str) -> Decimal | None:
    """`amount` of the field `name`, or None when absent or empty."""
    value = data.get(name)
    return None if value is None or value == "" else amount(value, name)


def plain(value: object) -> object:
    """A parsed value as JSON-safe primitives for job payloads: dataclasses become objects,
    decimals and integers beyond 64 bits plain-notation strings (exact, never floats), enums
    their values, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return str(value)  # token amounts in base units (uint256): JSON encoders stop at 64 bits
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value
