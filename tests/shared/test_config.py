"""Core settings: parsed once, bad values named at start-up, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.errors import ConfigError

TOKEN = "a-wyre-path-token-long-enough"


def test_defaults_are_safe_for_development() -> None:
    settings = Settings.from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.enabled_providers() == []


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CALLGATE_PORT": "eighty"}, "CALLGATE_PORT"),
        ({"CALLGATE_PORT": "70000"}, "CALLGATE_PORT"),
        ({"CALLGATE_LOG_JSON": "yes"}, "CALLGATE_LOG_JSON"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"DATABASE_URL": "mysql://root@localhost/x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://postgres@localhost"}, "DATABASE_URL"),
        ({"CALLGATE_MEMO_TTL_SECONDS": "3600"}, "CALLGATE_MEMO_TTL_SECONDS"),
        ({"CALLGATE_WYRE_PATH_TOKEN": "short"}, "CALLGATE_WYRE_PATH_TOKEN"),
        ({"CALLGATE_LOG_LEVEL": "chatty"}, "CALLGATE_LOG_LEVEL"),
        ({"CALLGATE_WYRE_PATH_TOKEN_FILE": "/nonexistent/token"}, "CALLGATE_WYRE_PATH_TOKEN_FILE"),
    ],
)
def test_a_bad_value_fails_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert raised.value.variable == variable
    assert str(raised.value).startswith(variable)


def test_secrets_come_from_files_and_never_show_in_repr(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    (tmp_path / "admin").write_text("admin-secret\n")
    settings = Settings.from_env(
        {
            "CALLGATE_WYRE_PATH_TOKEN_FILE": str(tmp_path / "token"),
            "CALLGATE_WYRE_SIGNING_SECRET": "hmac-secret",
            "CALLGATE_ADMIN_TOKEN_FILE": str(tmp_path / "admin"),
        }
    )
    assert settings.providers.wyre is not None
    assert settings.providers.wyre.path_token == TOKEN
    assert settings.admin_token == "admin-secret"
    assert settings.enabled_providers() == ["wyre"]
    shown = repr(settings)
    assert TOKEN not in shown and "hmac-secret" not in shown and "admin-secret" not in shown


def test_a_secret_given_twice_is_refused() -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CALLGATE_WYRE_PATH_TOKEN": TOKEN, "CALLGATE_WYRE_PATH_TOKEN_FILE": "/x"})
    assert raised.value.variable == "CALLGATE_WYRE_PATH_TOKEN"
