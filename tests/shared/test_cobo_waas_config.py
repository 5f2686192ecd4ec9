"""The Cobo WaaS / UCW settings sections: enabled, disabled, and every refusal naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.config import Settings
from shared.errors import ConfigError
from shared.waas.cobo_auth import ENVIRONMENTS, CoboEnvironment, public_key_hex

SECRET = Ed25519PrivateKey.generate()
SECRET_HEX = SECRET.private_bytes_raw().hex()
KEYS = "first-ucw-key-0123456789,second-ucw-key-0123456789"


def test_disabled_without_secrets() -> None:
    providers = Settings.from_env({}).providers
    assert providers.cobo_waas is None and providers.cobo_ucw is None


def test_enabled_with_defaults_and_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "waas.key"
    secret_file.write_text(SECRET_HEX + "\n")
    env = {"CALLGATE_COBO_WAAS_API_SECRET_FILE": str(secret_file), "CALLGATE_UCW_API_KEYS": KEYS}
    providers = Settings.from_env(env).providers
    assert providers.cobo_waas is not None and providers.cobo_ucw is not None
    # The SDK's default environment, and its published response key.
    assert providers.cobo_waas.base_url == ENVIRONMENTS[CoboEnvironment.DEV].base_url
    dev_key = ENVIRONMENTS[CoboEnvironment.DEV].response_public_key
    assert public_key_hex(providers.cobo_waas.response_public_key) == dev_key
    assert providers.cobo_ucw.api_keys == ("first-ucw-key-0123456789", "second-ucw-key-0123456789")
    assert providers.cobo_ucw.wait_ms == 0
    # Secrets stay out of reprs (and so out of logs).
    assert SECRET_HEX not in repr(providers) and "first-ucw-key" not in repr(providers)


def test_production_url_picks_the_production_key() -> None:
    env = {"CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX, "CALLGATE_COBO_WAAS_BASE_URL": "https://api.cobo.com/v2/"}
    waas = Settings.from_env(env).providers.cobo_waas
    assert waas is not None and waas.base_url == "https://api.cobo.com/v2"
    assert public_key_hex(waas.response_public_key) == ENVIRONMENTS[CoboEnvironment.PROD].response_public_key


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CALLGATE_COBO_WAAS_API_SECRET": "abc"}, "CALLGATE_COBO_WAAS_API_SECRET"),
        (
            {"CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX, "CALLGATE_COBO_WAAS_API_KEY": "00" * 32},
            "CALLGATE_COBO_WAAS_API_KEY",
        ),
        (
            {"CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX, "CALLGATE_COBO_WAAS_BASE_URL": "http://127.0.0.1:9/v2"},
            "CALLGATE_COBO_WAAS_RESPONSE_PUBLIC_KEY",
        ),
        (
            {"CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX, "CALLGATE_COBO_WAAS_BASE_URL": "ftp://api.cobo.com/v2"},
            "CALLGATE_COBO_WAAS_BASE_URL",
        ),
        (
            {"CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX, "CALLGATE_COBO_WAAS_RESPONSE_PUBLIC_KEY": "xyz"},
            "CALLGATE_COBO_WAAS_RESPONSE_PUBLIC_KEY",
        ),
        ({"CALLGATE_UCW_API_KEYS": KEYS}, "CALLGATE_COBO_WAAS_API_SECRET"),
        ({"CALLGATE_UCW_API_KEYS": "short", "CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX}, "CALLGATE_UCW_API_KEYS"),
        (
            {"CALLGATE_UCW_API_KEYS": KEYS, "CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX, "CALLGATE_UCW_WAIT_MS": "-1"},
            "CALLGATE_UCW_WAIT_MS",
        ),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable


def test_matching_api_key_and_custom_environment_are_accepted() -> None:
    env_key = Ed25519PrivateKey.generate().public_key()
    env = {
        "CALLGATE_COBO_WAAS_API_SECRET": SECRET_HEX,
        "CALLGATE_COBO_WAAS_API_KEY": public_key_hex(SECRET).upper(),
        "CALLGATE_COBO_WAAS_BASE_URL": "http://127.0.0.1:9/v2",
        "CALLGATE_COBO_WAAS_RESPONSE_PUBLIC_KEY": public_key_hex(env_key),
        "CALLGATE_COBO_WAAS_MAX_CONCURRENCY": "2",
    }
    waas = Settings.from_env(env).providers.cobo_waas
    assert waas is not None and waas.client.max_concurrency == 2
