from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.config import Settings
from shared.errors import ConfigError


@cache
def _key(bits: int = 2048, which: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _public_file(tmp_path: Path, key: rsa.RSAPrivateKey, name: str = "pub.pem") -> str:
    path = tmp_path / name
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return str(path)


def _private_file(tmp_path: Path, key: rsa.RSAPrivateKey, name: str = "key.pem") -> str:
    path = tmp_path / name
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


def test_chainup_is_off_unless_configured() -> None:
    providers = Settings.from_env({}).providers
    assert providers.chainup_cosigner is None and providers.chainup_waas is None
    assert Settings.from_env({"CALLGATE_CHAINUP_APP_ID": "app"}).providers.chainup_waas is None


def test_cosigner_protection_settings() -> None:
    config = Settings.from_env(
        {
            "CALLGATE_CHAINUP_COSIGNER_TOKEN": "t" * 16,
            "CALLGATE_CHAINUP_COSIGNER_ALLOWED_IPS": "10.0.0.0/8, 127.0.0.1,::1",
            "CALLGATE_CHAINUP_APP_ID": "app",
        }
    ).providers.chainup_cosigner
    assert config is not None and config.token == "t" * 16 and config.app_id == "app"
    assert ipaddress.ip_address("10.1.2.3") in config.allowed_networks[0]
    assert len(config.allowed_networks) == 3
    assert "t" * 16 not in repr(config)
    unprotected = Settings.from_env({"CALLGATE_CHAINUP_COSIGNER_ENABLED": "true"}).providers.chainup_cosigner
    assert unprotected is not None and unprotected.token is None and unprotected.allowed_networks == ()
    off = {"CALLGATE_CHAINUP_COSIGNER_ENABLED": "false", "CALLGATE_CHAINUP_COSIGNER_TOKEN": "t" * 16}
    assert Settings.from_env(off).providers.chainup_cosigner is None


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CALLGATE_CHAINUP_COSIGNER_TOKEN": "short"}, "CALLGATE_CHAINUP_COSIGNER_TOKEN"),
        ({"CALLGATE_CHAINUP_COSIGNER_ALLOWED_IPS": "10.0.0.0/33"}, "CALLGATE_CHAINUP_COSIGNER_ALLOWED_IPS"),
        ({"CALLGATE_CHAINUP_COSIGNER_ALLOWED_IPS": "example.com"}, "CALLGATE_CHAINUP_COSIGNER_ALLOWED_IPS"),
        ({"CALLGATE_CHAINUP_COSIGNER_ENABLED": "yes"}, "CALLGATE_CHAINUP_COSIGNER_ENABLED"),
    ],
)
def test_bad_cosigner_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable


def test_waas_settings_load_and_check_the_keys(tmp_path: Path) -> None:
    env = {
        "CALLGATE_CHAINUP_APP_ID": "app",
        "CALLGATE_CHAINUP_PUBLIC_KEY_FILE": _public_file(tmp_path, _key()),
        "CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE": _private_file(tmp_path, _key(2048, 1)),
        "CALLGATE_CHAINUP_DEMO_PRIVATE_KEY_FILE": _private_file(tmp_path, _key(), "demo.pem"),
    }
    config = Settings.from_env(env).providers.chainup_waas
    assert config is not None and config.app_id == "app"
    assert config.public_key.n == _key().public_key().public_numbers().n
    assert (
        config.merchant_private_key is not None and config.merchant_private_key.d == _key(2048, 1).private_numbers().d
    )
    assert "merchant_private_key" not in repr(config) and "public_key" not in repr(config)


@pytest.mark.parametrize("case", ["no_app_id", "short_key", "bad_merchant_key", "foreign_demo_key"])
def test_bad_waas_settings_name_the_variable(tmp_path: Path, case: str) -> None:
    env = {"CALLGATE_CHAINUP_APP_ID": "app", "CALLGATE_CHAINUP_PUBLIC_KEY_FILE": _public_file(tmp_path, _key())}
    if case == "no_app_id":
        del env["CALLGATE_CHAINUP_APP_ID"]
        variable = "CALLGATE_CHAINUP_APP_ID"
    elif case == "short_key":
        env["CALLGATE_CHAINUP_PUBLIC_KEY_FILE"] = _public_file(tmp_path, _key(1024), "short.pem")
        variable = "CALLGATE_CHAINUP_PUBLIC_KEY_FILE"
    elif case == "bad_merchant_key":
        (tmp_path / "bad.pem").write_text("not a key")
        env["CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE"] = str(tmp_path / "bad.pem")
        variable = "CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE"
    else:
        env["CALLGATE_CHAINUP_DEMO_PRIVATE_KEY_FILE"] = _private_file(tmp_path, _key(2048, 1))
        variable = "CALLGATE_CHAINUP_DEMO_PRIVATE_KEY_FILE"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable
