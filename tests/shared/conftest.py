"""Fixtures shared by the tests of `shared/` and the CLIs built on it."""

from __future__ import annotations

import secrets

import pytest

from shared.db import Pool


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, redis_url: str, database_url: str, db: Pool) -> None:
    """`callgate.cli.main` pointed at the session's Redis and Postgres, with a key prefix of its own."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CALLGATE_KEY_PREFIX", f"test-{secrets.token_hex(4)}")
    monkeypatch.setenv("CALLGATE_LOG_JSON", "false")
