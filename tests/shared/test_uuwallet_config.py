from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from shared.config import Settings
from shared.errors import ConfigError
from shared.rsablocks import public_from_crypto

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505 (the WaaS's size)
KEYS = "uu-key-current-0123456789,uu-key-previous-012345"
API_KEYS, PUBLIC_KEY = "CALLGATE_UUWALLET_API_KEYS", "CALLGATE_UUWALLET_PUBLIC_KEY_FILE"


def _pem_file(tmp_path: Path, key: object = _KEY, *, bare: bool = False) -> str:
    assert isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if bare:  # one Base64 line of DER, as the WaaS e-mails it
        data = base64.b64encode(key.public_bytes(serialization.Encoding.DER, spki))
    else:
        data = key.public_bytes(serialization.Encoding.PEM, spki)
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "waas.pub"
    path.write_bytes(data)
    return str(path)


def test_disabled_without_settings() -> None:
    assert Settings.from_env({}).providers.uuwallet is None


@pytest.mark.parametrize("bare", [False, True])
def test_enabled_with_keys_and_a_public_key(tmp_path: Path, bare: bool) -> None:
    env = {API_KEYS: KEYS, PUBLIC_KEY: _pem_file(tmp_path, bare=bare)}
    config = Settings.from_env(env).providers.uuwallet
    assert config is not None
    assert config.api_keys == ("uu-key-current-0123456789", "uu-key-previous-012345")
    assert config.public_key == public_from_crypto(_KEY)
    assert KEYS.split(",")[0] not in repr(config)


def test_api_keys_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    secret.write_text(KEYS + "\n")
    env = {"CALLGATE_UUWALLET_API_KEYS_FILE": str(secret), PUBLIC_KEY: _pem_file(tmp_path)}
    config = Settings.from_env(env).providers.uuwallet
    assert config is not None and len(config.api_keys) == 2


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({API_KEYS: KEYS}, PUBLIC_KEY),
        ({PUBLIC_KEY: "<pem>"}, API_KEYS),
        (
            {API_KEYS: "short", PUBLIC_KEY: "<pem>"},
            API_KEYS,
        ),
        (
            {API_KEYS: KEYS, PUBLIC_KEY: "/nonexistent/waas.pub"},
            PUBLIC_KEY,
        ),
        (
            {API_KEYS: KEYS, PUBLIC_KEY: "<garbage>"},
            PUBLIC_KEY,
        ),
        (
            {API_KEYS: KEYS, PUBLIC_KEY: "<ed25519>"},
            PUBLIC_KEY,
        ),
    ],
)
def test_wrong_settings_name_the_variable(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    files = {
        "<pem>": _pem_file(tmp_path),
        "<garbage>": str(tmp_path / "garbage"),
        "<ed25519>": _pem_file(tmp_path / "ed", ed25519.Ed25519PrivateKey.generate().public_key()),
    }
    (tmp_path / "garbage").write_text("not a key")
    resolved = {name: files.get(value, value) for name, value in env.items()}
    with pytest.raises(ConfigError) as info:
        Settings.from_env(resolved)
    assert info.value.variable == variable


def _private_pem(tmp_path: Path, key: rsa.RSAPrivateKey) -> str:
    path = tmp_path / f"demo-{id(key)}.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


def test_the_demo_key_must_be_the_private_half_of_the_public_key(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (the WaaS's size)
    env = {API_KEYS: KEYS, PUBLIC_KEY: _pem_file(tmp_path, private.public_key())}
    demo = _private_pem(tmp_path, private)
    config = Settings.from_env({**env, "CALLGATE_UUWALLET_DEMO_PRIVATE_KEY_FILE": demo}).providers.uuwallet
    assert config is not None and config.demo_private_key_file == demo
    other = _private_pem(tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    with pytest.raises(ConfigError, match="private half") as info:
        Settings.from_env({**env, "CALLGATE_UUWALLET_DEMO_PRIVATE_KEY_FILE": other})
    assert info.value.variable == "CALLGATE_UUWALLET_DEMO_PRIVATE_KEY_FILE"
