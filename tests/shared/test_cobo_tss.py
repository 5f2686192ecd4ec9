from __future__ import annotations

import base64
import time
from decimal import Decimal
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared import evm
from shared.errors import InvalidInput
from shared.policy.model import Action, Operation
from shared.providers import cobo_tss_samples as samples
from shared.providers.cobo_jwt import sign_rs256, verify_rs256
from shared.providers.cobo_tss import (
    CoboTssResponse,
    ResponseStatus,
    decode_package_data,
    fingerprint,
    parse_request,
    response_claims,
)
from shared.providers.cobo_tss_fields import KeyGenDetail, KeyShareSignDetail, KeySignDetail, ReshareDetail

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def roundtrip(package: dict[str, Any]) -> dict[str, Any]:
    """Through a real node-style token, as the gateway will see it."""
    return decode_package_data(verify_rs256(samples.request_token(package, KEY), KEY.public_key()))


def with_detail(package: dict[str, Any], **changes: Any) -> dict[str, Any]:
    detail = orjson.loads(package["request_detail"]) | changes
    return package | {"request_detail": orjson.dumps(detail).decode()}


def test_every_request_type_parses() -> None:
    assert isinstance(parse_request(roundtrip(samples.keygen("k1"))).detail, KeyGenDetail)
    assert isinstance(parse_request(roundtrip(samples.reshare("r1"))).detail, ReshareDetail)
    assert isinstance(parse_request(roundtrip(samples.keysharesign("s1"))).detail, KeyShareSignDetail)
    sign = parse_request(roundtrip(samples.keysign("t1")))
    assert isinstance(sign.detail, KeySignDetail) and sign.type_label == "keysign"
    assert sign.extra.transaction is not None and sign.extra.transaction.outputs[0].amount == Decimal("1.5")
    assert sign.extra.wallet_id == "wallet-1" and sign.extra.vault_id == "vault-1"


@pytest.mark.parametrize("empty", [None, "", {}])
def test_ping_tolerates_empty_fields_in_every_form(empty: object) -> None:
    package: dict[str, Any] = {"request_type": 0, "request_id": empty, "request_detail": empty, "extra_info": empty}
    ping = parse_request(package)
    assert ping.request_id == "" and ping.detail is None and ping.type_label == "ping"
    assert parse_request({"request_type": 0}).supported


def test_unknown_type_parses_as_unsupported() -> None:
    request = parse_request({"request_type": 4, "request_id": "x", "request_detail": "{}"})
    assert not request.supported and request.detail is None and request.type_label == "unsupported"


@pytest.mark.parametrize(
    ("package", "field"),
    [
        ([], "package_data"),
        ({"request_id": "a"}, "request_type"),
        ({"request_id": "a", "request_type": "2"}, "request_type"),
        ({"request_id": "a", "request_type": True}, "request_type"),
        ({"request_id": "", "request_type": 1}, "request_id"),
        ({"request_id": 7, "request_type": 1}, "package_data.request_id"),
        ({"request_id": "a", "request_type": 1, "request_detail": "{not json", "extra_info": "{}"}, "request_detail"),
        ({"request_id": "a", "request_type": 1, "request_detail": "[1]", "extra_info": "{}"}, "request_detail"),
        ({"request_id": "a", "request_type": 1, "request_detail": "", "extra_info": "{}"}, "request_detail"),
        ({"request_id": "a", "request_type": 1, "request_detail": "[" * 100_000, "extra_info": "{}"}, "request_detail"),
        ({"request_id": "a", "request_type": 1, "request_detail": '{"threshold": NaN}'}, "request_detail"),
    ],
)
def test_malformed_packages(package: object, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(package)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"threshold": "2"}, "request_detail.threshold"),
        ({"threshold": True}, "request_detail.threshold"),
        ({"threshold": 2**40}, "request_detail.threshold"),
        ({"node_ids": None}, "request_detail.node_ids"),
        ({"node_ids": [1, 2]}, "request_detail.node_ids"),
        ({"node_ids": ["n"] * 2000}, "request_detail.node_ids"),
        ({"task_id": "x" * 5000}, "request_detail.task_id"),
        ({"curve": 1.5}, "request_detail.curve"),
    ],
)
def test_typed_detail_fields(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(with_detail(samples.keygen("k"), **changes))
    assert info.value.field == field


def test_keysign_requires_hashes_and_reads_amounts_exactly() -> None:
    with pytest.raises(InvalidInput, match="msg_hash_list"):
        parse_request(samples.keysign("t", msg_hashes=[]))
    precise = parse_request(samples.keysign("t", amount="0.123456789012345678901234567"))
    assert precise.extra.transaction is not None
    assert precise.extra.transaction.outputs[0].amount == Decimal("0.123456789012345678901234567")
    for bad in ("-1", "abc", "Infinity", "1" * 100):
        with pytest.raises(InvalidInput, match="amount"):
            parse_request(samples.keysign("t", amount=bad))


def test_float_amounts_become_decimals_not_floats() -> None:
    package = samples.keysign("t")
    extra = package["extra_info"].replace('"amount":"1.5"', '"amount":1.10000000000000000001')
    request = parse_request(package | {"extra_info": extra})
    assert request.extra.transaction is not None
    assert request.extra.transaction.outputs[0].amount == Decimal("1.10000000000000000001")


def test_already_decoded_detail_objects_are_tolerated() -> None:
    package = samples.keygen("k")
    decoded = package | {"request_detail": orjson.loads(package["request_detail"])}
    assert parse_request(decoded) == parse_request(package)


def test_package_data_must_be_base64_json_object() -> None:
    with pytest.raises(InvalidInput, match="package_data"):
        decode_package_data({"package_data": "!!"})
    with pytest.raises(InvalidInput, match="package_data"):
        decode_package_data({"package_data": base64.b64encode(b"[1]").decode()})
    with pytest.raises(InvalidInput, match="package_data"):
        decode_package_data({})
    unpadded = base64.b64encode(b'{"a":1}').decode().rstrip("=")
    assert decode_package_data({"package_data": unpadded}) == {"a": 1}


def test_fingerprint_ignores_volatile_fields_but_not_content() -> None:
    base = samples.keysign("t")
    same = fingerprint(parse_request(base))
    volatile = base | {"extra_info": base["extra_info"].replace("PendingSignature", "Broadcasting")}
    assert fingerprint(parse_request(volatile)) == same
    assert fingerprint(parse_request(samples.keysign("t", amount="2"))) != same
    assert fingerprint(parse_request(samples.keysign("t", destination="0x" + "33" * 20))) != same
    other_tx = samples.evm_transfer_tx(nonce=8)
    assert fingerprint(parse_request(samples.keysign("t", raw_tx=other_tx))) != same
    assert fingerprint(parse_request(samples.keysign("u"))) != same


def test_response_token_matches_the_template_layout_and_pyjwt_reads_it() -> None:
    now = time.time()
    response = CoboTssResponse("req-1", ResponseStatus.OK, Action.REJECT, "amount_over_limit")
    token = sign_rs256(response_claims(response, issuer="callgate", ttl_minutes=2, now=now), KEY)
    decoded = jwt.decode(token, KEY.public_key(), algorithms=["RS256"], issuer="callgate")
    assert decoded["exp"] == int(now + 120)
    body = orjson.loads(base64.b64decode(decoded["package_data"], validate=True))
    assert body == {"request_id": "req-1", "status": 0, "action": "REJECT", "error": "amount_over_limit"}
    assert samples.read_response(f'"{token}"', KEY.public_key())["action"] == "REJECT"


def test_response_error_is_bounded() -> None:
    response = CoboTssResponse("r", ResponseStatus.INVALID_REQUEST, Action.REJECT, "x" * 10_000)
    claims = response_claims(response, issuer="i", ttl_minutes=1, now=0)
    assert len(orjson.loads(base64.b64decode(claims["package_data"]))["error"]) == 500
    assert [s.value for s in ResponseStatus] == [0, 10, 20, 30]


def test_evm_sample_hash_is_the_raw_tx_hash() -> None:
    raw = samples.evm_transfer_tx()
    package = samples.keysign("t", raw_tx=raw)
    hashes = orjson.loads(package["request_detail"])["msg_hash_list"]
    assert hashes == ["0x" + evm.keccak256(bytes.fromhex(raw[2:])).hex()]
    assert parse_request(package).detail is not None
    assert Operation.KEYSIGN.value == "keysign"


def test_integers_beyond_64_bits_still_parse() -> None:
    package = samples.keysign("t")
    extra = package["extra_info"].replace('"created_timestamp":1700000000000', '"created_timestamp":' + "9" * 30)
    assert extra != package["extra_info"]
    request = parse_request(package | {"extra_info": extra})
    assert request.extra.transaction is not None and request.extra.transaction.wallet_id == "wallet-1"


def test_sample_keysign_wallets_name_their_org_and_vault_as_the_sdk_requires() -> None:
    # MPCWalletInfo (protocols/cobo.md A.3) carries org_id and vault_id; a sample without them
    # is a request the node would never send.
    for package in (samples.keysign("t"), samples.keysharesign("s")):
        extra = orjson.loads(package["extra_info"])
        wallet = extra["wallet"]
        assert wallet["org_id"] == extra["org"]["org_id"] and wallet["vault_id"] == extra["vault"]["vault_id"]
        assert wallet["wallet_id"] and wallet["name"]
