"""Cobo Auth: our request signatures equal the official SDK's, response/webhook checks are strict."""

from __future__ import annotations

import hashlib
import json

import pytest
from cobo_waas2.configuration import Configuration
from cobo_waas2.crypto.local_ed25519_signer import LocalEd25519Signer
from cobo_waas2.crypto.signing_helper import SignHelper
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.errors import Unauthorized
from shared.waas.cobo_auth import (
    ENVIRONMENTS,
    CoboEnvironment,
    load_api_secret,
    load_public_key,
    public_key_hex,
    request_headers,
    verify_response,
    verify_webhook,
)

PATH = "/v2/wallets/mpc/vaults/4f2a7c1e-0000-4000-8000-000000000001/tss_requests/20240711114129000132315000003970"


def _secret_hex() -> str:
    return Ed25519PrivateKey.generate().private_bytes_raw().hex()


def _cobo_sign(key: Ed25519PrivateKey, body: bytes, timestamp: str) -> str:
    # Independent of shared.waas: what Cobo does to sign a response or a webhook.
    message = body + b"|" + timestamp.encode()
    return key.sign(hashlib.sha256(hashlib.sha256(message).digest()).digest()).hex()


def test_get_signature_equals_the_official_sdk_signer() -> None:
    secret = _secret_hex()
    ours = request_headers(load_api_secret(secret), "get", PATH, nonce="1731974400123")
    signature, api_key = SignHelper.sign(LocalEd25519Signer(secret), "GET", PATH, "1731974400123")
    assert ours == {"Biz-Api-Key": api_key, "Biz-Api-Nonce": "1731974400123", "Biz-Api-Signature": signature}


def test_signature_with_query_and_body_equals_the_official_sdk_signer() -> None:
    secret = _secret_hex()
    params = {"key_share_holder_group_id": "g1", "limit": "10"}
    body = json.dumps({"type": "KeyGen", "description": "ünïcode"}).encode()
    ours = request_headers(
        load_api_secret(secret),
        "POST",
        "/v2/wallets/mpc/vaults/v1/tss_requests",
        params="key_share_holder_group_id=g1&limit=10",
        body=body,
        nonce="42",
    )
    signature, _ = SignHelper.sign(
        LocalEd25519Signer(secret), "POST", "/v2/wallets/mpc/vaults/v1/tss_requests", "42", params=params, body=body
    )
    assert ours["Biz-Api-Signature"] == signature


def test_nonce_defaults_to_current_milliseconds() -> None:
    headers = request_headers(load_api_secret(_secret_hex()), "GET", PATH)
    assert headers["Biz-Api-Nonce"].isdigit() and len(headers["Biz-Api-Nonce"]) == 13


def test_environment_keys_match_the_sdk() -> None:
    for env, info in ENVIRONMENTS.items():
        config = Configuration(host=info.base_url)
        assert config.env == env.value
        assert config.resp_pubkey == info.response_public_key
        assert public_key_hex(load_public_key(info.response_public_key)) == info.response_public_key
    assert set(ENVIRONMENTS) == set(CoboEnvironment)


def test_malformed_keys_are_refused() -> None:
    for bad in ("", "zz" * 32, "ab" * 31, "ab" * 33):
        with pytest.raises(ValueError):
            load_api_secret(bad)
        with pytest.raises(ValueError):
            load_public_key(bad)


def test_response_signature_accepted_and_agrees_with_sdk() -> None:
    env = Ed25519PrivateKey.generate()
    body = b'{"tss_request_id": "1", "status": "Success"}'
    signature = _cobo_sign(env, body, "1731974400000")
    headers = {"Biz-Timestamp": "1731974400000", "Biz-Resp-Signature": signature}
    verify_response(env.public_key(), headers, body)
    assert SignHelper.verify(public_key_hex(env), signature, f"{body.decode()}|1731974400000")


def test_response_unsigned_or_badly_signed_is_refused() -> None:
    env = Ed25519PrivateKey.generate()
    body = b'{"status": "Success"}'
    good = {"Biz-Timestamp": "1000", "Biz-Resp-Signature": _cobo_sign(env, body, "1000")}
    cases = [
        ({}, body),
        ({"Biz-Timestamp": "1000"}, body),
        ({"Biz-Resp-Signature": good["Biz-Resp-Signature"]}, body),
        (good, body + b" "),
        ({**good, "Biz-Timestamp": "1001"}, body),
        ({**good, "Biz-Resp-Signature": "00" * 64}, body),
        ({**good, "Biz-Resp-Signature": "not hex" * 20}, body),
        ({**good, "Biz-Resp-Signature": good["Biz-Resp-Signature"][:-2]}, body),
    ]
    for headers, sent in cases:
        with pytest.raises(Unauthorized):
            verify_response(env.public_key(), headers, sent)
    # Signed by another key: a different environment, or someone else entirely.
    with pytest.raises(Unauthorized):
        verify_response(Ed25519PrivateKey.generate().public_key(), good, body)


def test_webhook_accepts_both_header_spellings() -> None:
    env = Ed25519PrivateKey.generate()
    body = b'{"event_id": "e1", "type": "wallets.mpc.tss_request.updated", "data": {}}'
    signature = _cobo_sign(env, body, "1731974400000")
    for ts_name, sig_name in (("BIZ_TIMESTAMP", "BIZ_RESP_SIGNATURE"), ("Biz-Timestamp", "Biz-Resp-Signature")):
        headers = {ts_name: "1731974400000", sig_name: signature}
        assert verify_webhook(env.public_key(), headers, body) == "1731974400000"
    with pytest.raises(Unauthorized):
        verify_webhook(env.public_key(), {"BIZ_TIMESTAMP": "1731974400000", "BIZ_RESP_SIGNATURE": signature}, body[1:])
    with pytest.raises(Unauthorized):
        verify_webhook(env.public_key(), {"BIZ_TIMESTAMP": "1731974400000"}, body)
