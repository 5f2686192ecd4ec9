"""Typed readers for policy data: each narrows an untrusted value or raises PolicyError(path, …)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from shared.errors import PolicyError

T = TypeVar("T")
_MAX_TEXT = 10_000


def field_path(path: str, key: str) -> str:
    """`path.key`, or `key` at the top level."""
    return f"{path}.{key}" if path and path != "$" else key


def as_mapping(value: object, path: str) -> dict[str, object]:
    """A mapping with string keys."""
    if not isinstance(value, dict):
        raise PolicyError(path, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise PolicyError(path, f"keys must be strings, got {_kind(key)}")
    return value


def check_keys(
    mapping: Mapping[str, object], path: str, *, allowed: frozenset[str], required: frozenset[str] = frozenset()
) -> None:
    """Refuse unknown keys (a typo must not drop a rule silently) and missing required ones."""
    for key in mapping:
        if key not in allowed:
            raise PolicyError(field_path(path, key), f"unknown key; expected one of {', '.join(sorted(allowed))}")
    for key in sorted(required):
        if key not in mapping:
            raise PolicyError(field_path(path, key), "missing")


def as_str(value: object, path: str) -> str:
    """A string of reasonable length."""
    if not isinstance(value, str):
        raise PolicyError(path, f"expected a string, got {_kind(value)}")
    if len(value) > _MAX_TEXT:
        raise PolicyError(path, f"longer than {_MAX_TEXT} characters")
    return value


def as_str_list(value: object, path: str) -> list[str]:
    """A list of non-empty strings (quote 0x addresses in YAML if in doubt)."""
    if not isinstance(value, list):
        raise PolicyError(path, f"expected a list, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PolicyError(f"{path}[{i}]", f"expected a non-empty string, got {_kind(item)}")
        if len(item) > _MAX_TEXT:
            raise PolicyError(f"{path}[{i}]", f"longer than {_MAX_TEXT} characters")
        if not item.isprintable():  # also what lets the store hand lists over newline-joined
            raise PolicyError(f"{path}[{i}]", "control characters are not allowed")
    return value


def as_decimal(value: object, path: str) -> Decimal:
    """A finite decimal from an int, a Decimal or a string; floats are refused (inexact)."""
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise PolicyError(path, f"not a decimal: expected a number or a string, got {_kind(value)}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, ValueError):
        raise PolicyError(path, "not a decimal") from None
    if not number.is_finite():
        raise PolicyError(path, "not a decimal: must be finite")
    return number


def as_int(value: object, path: str, *, low: int, high: int) -> int:
    """An integer in [low, high] (booleans are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(path, f"expected an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise PolicyError(path, f"must be between {low} and {high}")
    return value


def optional(mapping: Mapping[str, object], key: str, default: T, read: Callable[[object, str], T], path: str) -> T:
    """`read(mapping[key])` when the key is present, else `default`."""
    return read(mapping[key], field_path(path, key)) if key in mapping else default


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
