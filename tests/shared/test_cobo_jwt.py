from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from shared.config import load_rsa_private_key, load_rsa_public_key
from shared.errors import ConfigError
from shared.providers.cobo_jwt import TokenRejected, VerifyOptions, sign_rs256, verify_rs256


@functools.cache
def rsa_key(bits: int = 2048, slot: int = 0) -> rsa.RSAPrivateKey:
    """Keys are made at test time (never committed); `slot` gives distinct keys of one size."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**extra: Any) -> dict[str, Any]:
    return {"package_data": "e30=", "iss": "node", "exp": int(time.time()) + 120} | extra


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rejected(token: str, key: rsa.RSAPublicKey | None = None, **kw: Any) -> str:
    with pytest.raises(TokenRejected) as info:
        verify_rs256(token, key or rsa_key().public_key(), **kw)
    return info.value.code


@pytest.mark.parametrize("bits", [2048, 3072, 4096])
def test_interop_with_pyjwt_both_ways(bits: int) -> None:
    key = rsa_key(bits)
    theirs = jwt.encode(claims(n=bits), key, algorithm="RS256")
    assert verify_rs256(theirs, key.public_key())["n"] == bits
    ours = sign_rs256(claims(n=bits), key)
    decoded = jwt.decode(ours, key.public_key(), algorithms=["RS256"])
    assert decoded["n"] == bits and decoded["iss"] == "node"
    assert jwt.get_unverified_header(ours) == {"alg": "RS256", "typ": "JWT"}


def test_keys_load_from_pkcs1_and_pkcs8_and_spki() -> None:
    key = rsa_key()
    for fmt in (serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8):
        pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        loaded = load_rsa_private_key("PRIV", pem)
        assert loaded.private_numbers() == key.private_numbers()
    assert load_rsa_public_key("PUB", public_pem(key)).public_numbers() == key.public_key().public_numbers()


def test_bad_keys_name_the_variable() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_pub = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigError, match="NODE_KEY: the PEM key is not an RSA key"):
        load_rsa_public_key("NODE_KEY", ec_pub)
    with pytest.raises(ConfigError, match="NODE_KEY: not a PEM RSA public key"):
        load_rsa_public_key("NODE_KEY", b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ConfigError, match="OUR_KEY"):
        load_rsa_private_key("OUR_KEY", b"garbage")


def test_tampered_payload_and_signature_fail() -> None:
    token = sign_rs256(claims(), rsa_key())
    header, payload, signature = token.split(".")
    forged = b64(orjson.dumps(claims(package_data="eyJ4IjoxfQ==")))
    assert rejected(f"{header}.{forged}.{signature}") == "bad_signature"
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert rejected(f"{header}.{payload}.{flipped}") == "bad_signature"


def test_wrong_key_fails() -> None:
    token = sign_rs256(claims(), rsa_key(2048, slot=1))
    assert rejected(token) == "bad_signature"


def test_expiry_enforced_with_leeway() -> None:
    now = time.time()
    token = sign_rs256(claims(exp=int(now) - 10), rsa_key())
    assert verify_rs256(token, rsa_key().public_key(), options=VerifyOptions(leeway_s=30), now=now)
    assert rejected(token, options=VerifyOptions(leeway_s=5), now=now) == "expired"
    assert rejected(sign_rs256(claims(exp=int(now) - 3600), rsa_key())) == "expired"


def test_exp_is_required_and_typed() -> None:
    body = claims()
    del body["exp"]
    assert rejected(sign_rs256(body, rsa_key())) == "missing_exp"
    assert verify_rs256(sign_rs256(body, rsa_key()), rsa_key().public_key(), options=VerifyOptions(require_exp=False))
    assert rejected(sign_rs256(claims(exp="soon"), rsa_key())) == "bad_claims"
    assert rejected(sign_rs256(claims(exp=True), rsa_key())) == "bad_claims"


def test_nbf_in_the_future_fails() -> None:
    assert rejected(sign_rs256(claims(nbf=int(time.time()) + 3600), rsa_key())) == "not_yet_valid"


def test_alg_none_is_refused() -> None:
    header = b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    payload = b64(orjson.dumps(claims()))
    assert rejected(f"{header}.{payload}.") == "alg_not_allowed"
    assert rejected(f"{header}.{payload}") == "malformed"


def test_hs256_with_the_public_key_as_secret_is_refused() -> None:
    # The classic algorithm-confusion forgery: HMAC keyed with the public PEM the verifier holds.
    header = b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    payload = b64(orjson.dumps(claims()))
    mac = hmac.new(public_pem(rsa_key()), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert rejected(f"{header}.{payload}.{b64(mac)}") == "alg_not_allowed"


def test_other_rsa_algorithms_are_refused() -> None:
    token = jwt.encode(claims(), rsa_key(), algorithm="RS512")
    assert rejected(token) == "alg_not_allowed"
    ps = jwt.encode(claims(), rsa_key(), algorithm="PS256")
    assert rejected(ps) == "alg_not_allowed"


def test_rs256_header_with_forged_crit_is_refused() -> None:
    token = jwt.encode(claims(), rsa_key(), algorithm="RS256", headers={"crit": ["exp"]})
    assert rejected(token) == "bad_header"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.sig",
        b64(b"not json") + ".e30.c2ln",
        b64(b"[1]") + ".e30.c2ln",
        "\u00e9.e30.c2ln",
        "x" * (5 * 1024 * 1024),
    ],
)
def test_malformed_tokens(token: str) -> None:
    assert rejected(token) == "malformed"


def test_payload_must_be_a_json_object_after_signature() -> None:
    key = rsa_key()
    header = b64(orjson.dumps({"alg": "RS256"}))
    payload = b64(b"[1,2]")
    signing_input = f"{header}.{payload}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    assert rejected(f"{header}.{payload}.{b64(signature)}") == "malformed"


def test_padded_base64url_parts_are_tolerated() -> None:
    # An encoder that keeps the padding signs the padded input: verify exactly what was sent.
    key = rsa_key()
    header = base64.urlsafe_b64encode(orjson.dumps({"alg": "RS256"})).decode()
    payload = base64.urlsafe_b64encode(orjson.dumps(claims(x=1))).decode()
    assert header.endswith("=") or payload.endswith("=")
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    padded = f"{header}.{payload}.{base64.urlsafe_b64encode(signature).decode()}"
    assert verify_rs256(padded, key.public_key())["x"] == 1
    unpadded_signature = f"{header}.{payload}.{b64(signature)}"
    assert verify_rs256(unpadded_signature, key.public_key())["x"] == 1
