"""`shared.times.parse_time`: the one reading of an operator's ISO 8601 time."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.times import parse_time


def test_a_time_without_offset_is_read_as_utc() -> None:
    assert parse_time("2026-01-31T12:00") == dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)


def test_an_offset_or_z_is_kept() -> None:
    assert parse_time("2026-01-31T12:00:00Z") == dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)
    east = parse_time("2026-01-31T12:00:00+02:00")
    assert east.utcoffset() == dt.timedelta(hours=2)
    assert east == dt.datetime(2026, 1, 31, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01T00:00", "1700000000"])
def test_anything_else_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)
