from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import InvalidInput, Unauthorized
from shared.providers import uuwallet as uu
from shared.providers.uuwallet_samples import DEPOSIT, REQUEST_WITHDRAW, WITHDRAW, decrypt_as_waas, encrypt_as_waas
from shared.rsablocks import RsaPublic, private_from_crypto, public_from_crypto


def _waas_key(which: int = 0) -> rsa.RSAPrivateKey:
    return _generated_key(which)  # one key per `which`, however the argument is spelt


@cache
def _generated_key(which: int) -> rsa.RSAPrivateKey:
    # RSA-1024 is what the WaaS issues (§2B); we only hold its public half in production.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def _public(which: int = 0) -> RsaPublic:
    return public_from_crypto(_waas_key(which).public_key())


def _waas_encrypt(payload: object, *, which: int = 0) -> bytes:
    """The WaaS side, written independently of shared.rsablocks: raw RSA with the private
    exponent over hand-padded type-1 blocks of 117-byte chunks, standard Base64."""
    nums = _waas_key(which).private_numbers()
    n, d = nums.public_numbers.n, nums.d
    plaintext = json.dumps(payload).encode()
    blocks = b""
    for i in range(0, len(plaintext), 117):
        chunk = plaintext[i : i + 117]
        em = b"\x00\x01" + b"\xff" * (125 - len(chunk)) + b"\x00" + chunk
        blocks += pow(int.from_bytes(em, "big"), d, n).to_bytes(128, "big")
    return base64.b64encode(blocks)


def _waas_read(data: str) -> Any:
    """The WaaS reading our answer's data, with OpenSSL's PKCS#1 v1.5 decryption."""
    raw = base64.b64decode(data, validate=True)
    assert len(raw) % 128 == 0
    key = _waas_key()
    return json.loads(b"".join(key.decrypt(raw[i : i + 128], padding.PKCS1v15()) for i in range(0, len(raw), 128)))


def _open(payload: object) -> uu.Callback:
    return uu.parse_callback(uu.decrypt_body(_waas_encrypt(payload), _public()))


# -- decryption ------------------------------------------------------------------------------


def test_a_bare_base64_body_decrypts() -> None:
    body = _waas_encrypt(DEPOSIT)
    assert len(base64.b64decode(body)) == 5 * 128  # several blocks
    assert uu.decrypt_body(body, _public()) == {**DEPOSIT, "amount": "2.500000000000"}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda b64: b"data=" + b64,  # `+` sent raw in the form field
        lambda b64: b"data=" + quote(b64.decode(), safe="").encode(),  # properly percent-encoded
        lambda b64: b"data=" + b64 + b"&business=0",
        lambda b64: b"apiKey=x&data=" + b64,
        lambda b64: b"\r\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)) + b"\n",  # MIME lines
        lambda b64: base64.urlsafe_b64encode(base64.b64decode(b64)).rstrip(b"="),
    ],
)
def test_tolerated_body_forms(wrap: Any) -> None:
    assert uu.decrypt_body(wrap(_waas_encrypt(WITHDRAW)), _public()) == WITHDRAW


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not base64 at all!",
        b"data=",
        b"{}",
        base64.b64encode(b"\x00" * 128),
        base64.b64encode(b"\x01" * 127),
    ],
)
def test_garbage_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        uu.decrypt_body(body, _public())


def test_truncated_ciphertext_is_invalid_input() -> None:
    body = _waas_encrypt(DEPOSIT)
    for cut in (4, 172, len(body) - 4):
        with pytest.raises(InvalidInput):
            uu.decrypt_body(body[:cut], _public())


def test_ciphertext_from_another_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match=r"unpad|modulus"):
        uu.decrypt_body(_waas_encrypt(DEPOSIT, which=1), _public(0))


def test_plaintext_that_is_not_json_is_invalid_input() -> None:
    nums = _waas_key().private_numbers()
    em = b"\x00\x01" + b"\xff" * 100 + b"\x00" + b"not json, really!" + b"\xfe" * 8
    block = pow(int.from_bytes(em, "big"), nums.d, nums.public_numbers.n).to_bytes(128, "big")
    with pytest.raises(InvalidInput, match="JSON"):
        uu.decrypt_body(base64.b64encode(block), _public())


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=800), st.text(max_size=400).map(str.encode)))
def test_arbitrary_bodies_only_raise_invalid_input(body: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        uu.decrypt_body(body, _public())


# -- callback types --------------------------------------------------------------------------


def test_deposit_is_typed() -> None:
    deposit = _open(DEPOSIT)
    assert isinstance(deposit, uu.Deposit)
    assert deposit.header == uu.Header(
        type=uu.CallbackType.DEPOSITED,
        request_uuid=DEPOSIT["requestUUID"],
        tenant_user_id="2049",
        tracking_id="6484",
        call_back_id=None,
        business=0,
    )
    assert deposit.transfer.amount == Decimal("2.5") and str(deposit.transfer.amount) == "2.500000000000"
    assert (deposit.tx_index, deposit.risk_level_from, deposit.risk_level_to, deposit.risk_level) == (-1, 3, 3, 3)
    assert deposit.transfer == uu.OnChain(
        tx_id=DEPOSIT["txId"],
        chain_name="TRON",
        symbol="TRX",
        amount=Decimal("2.500000000000"),
        to_address=DEPOSIT["toAddress"],
        from_address=DEPOSIT["fromAddress"],
        new_address=DEPOSIT["newAddress"],
    )


def test_withdraw_result_is_typed() -> None:
    result = _open({**WITHDRAW, "txTimeStamp": 1719200000000})
    assert isinstance(result, uu.WithdrawResult)
    assert result.header.call_back_id == "250624392590001"
    assert (result.transfer.tx_id, result.transfer.amount) == (WITHDRAW["txId"], Decimal("2.5"))
    assert result.tx_timestamp == 1719200000000


def test_withdraw_request_is_typed() -> None:
    request = _open(REQUEST_WITHDRAW)
    assert isinstance(request, uu.WithdrawRequest)
    assert request.call_back_id == "D611657466" == request.header.call_back_id


@pytest.mark.parametrize("type_", [5, 6, 7])
def test_withdraw_issues_are_typed(type_: int) -> None:
    issue = _open({**REQUEST_WITHDRAW, "type": type_, "toAddress": "TGDHyoMpgDQj4DmoZdwJP2FSkSG4DEchn2"})
    assert isinstance(issue, uu.WithdrawIssue)
    assert issue.header.type == type_ and issue.to_address == "TGDHyoMpgDQj4DmoZdwJP2FSkSG4DEchn2"


def test_address_change_is_typed() -> None:
    change = _open({**REQUEST_WITHDRAW, "type": 4, "callBackId": None, "newAddress": "TNew", "chainName": "TRON"})
    assert isinstance(change, uu.AddressChanged)
    assert (change.new_address, change.chain_name, change.symbol) == ("TNew", "TRON", None)


def test_type_0_is_ignored_even_without_ids() -> None:
    assert isinstance(_open({"type": 0}), uu.Ignored)
    assert isinstance(_open({**DEPOSIT, "type": "0"}), uu.Ignored)


def test_numbers_where_strings_are_documented_are_accepted() -> None:
    deposit = uu.parse_callback({**DEPOSIT, "tenantUserId": 2049, "trackingId": 6484, "riskLevelTo": "7"})
    assert isinstance(deposit, uu.Deposit)
    assert (deposit.header.tenant_user_id, deposit.header.tracking_id, deposit.risk_level_to) == ("2049", "6484", 7)
    # A JSON number amount stays exact: decode_body never makes a float.
    assert uu.parse_callback(
        uu.decrypt_body(_waas_encrypt({**DEPOSIT, "amount": 0.1}), _public())
    ) == uu.parse_callback({**DEPOSIT, "amount": "0.1"})


def test_missing_risk_levels_are_unknown_not_zero() -> None:
    deposit = uu.parse_callback({k: v for k, v in DEPOSIT.items() if not k.startswith("risk")})
    assert isinstance(deposit, uu.Deposit)
    assert deposit.risk_level is None
    only_to = uu.parse_callback({**DEPOSIT, "riskLevelFrom": None, "riskLevelTo": 88})
    assert isinstance(only_to, uu.Deposit) and only_to.risk_level == 88


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"riskLevelFrom": 101}, "riskLevelFrom"),
        ({"riskLevelTo": -1}, "riskLevelTo"),
        ({"riskLevelTo": 3.5}, "riskLevelTo"),
        ({"riskLevelTo": True}, "riskLevelTo"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "1e999"}, "amount"),
        ({"amount": None}, "amount"),
        ({"txId": None}, "txId"),
        ({"txId": "  "}, "txId"),
        ({"txId": "a" * 257}, "txId"),
        ({"toAddress": ["T1"]}, "toAddress"),
        ({"chainName": None}, "chainName"),
        ({"requestUUID": None}, "requestUUID"),
        ({"tenantUserId": ""}, "tenantUserId"),
        ({"type": 8}, "type"),
        ({"type": True}, "type"),
        ({"type": None}, "type"),
        ({"type": "²"}, "type"),
        ({"type": "9" * 5000}, "type"),  # longer than int() accepts: still InvalidInput
        ({"riskLevelTo": "9" * 5000}, "riskLevelTo"),
        ({"txIndex": "9" * 5000}, "txIndex"),
        ({"txIndex": "1.5"}, "txIndex"),
    ],
)
def test_bad_deposit_fields_are_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        uu.parse_callback({**DEPOSIT, **change})
    assert info.value.field == field


@pytest.mark.parametrize("type_", [2, 5, 6, 7])
def test_withdrawal_types_need_a_call_back_id(type_: int) -> None:
    with pytest.raises(InvalidInput, match="required") as info:
        uu.parse_callback({**REQUEST_WITHDRAW, "type": type_, "callBackId": None})
    assert info.value.field == "callBackId"


def test_withdraw_result_needs_its_tx_id() -> None:
    with pytest.raises(InvalidInput) as info:
        uu.parse_callback({**WITHDRAW, "txId": None})
    assert info.value.field == "txId"


@pytest.mark.parametrize("data", [[], "x", 1, None, [DEPOSIT]])
def test_non_objects_are_invalid_input(data: object) -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        uu.parse_callback(data)


_FIELDS = sorted({*DEPOSIT, *WITHDRAW, "txTimeStamp", "callBackId"})
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=300),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "0", "2.5", "-0", "9" * 5000, " 1 ", "1e3", "-1"]),
)


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from([DEPOSIT, WITHDRAW, REQUEST_WITHDRAW]),
    changes=st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=5),
)
def test_arbitrary_field_values_only_raise_invalid_input(base: dict[str, Any], changes: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidInput):
        uu.parse_callback({**base, **changes})


# -- idempotency keys ------------------------------------------------------------------------


def _key(payload: Mapping[str, Any]) -> str:
    return uu.idempotency_key(uu.parse_callback(payload))


def test_deposit_retry_with_a_new_request_uuid_is_the_same_event() -> None:
    retry = {**DEPOSIT, "requestUUID": "11111111-2222-3333-4444-555555555555", "riskLevelTo": 9, "txIndex": 4}
    assert _key(retry) == _key(DEPOSIT)
    assert _key(DEPOSIT).startswith("deposit:") and DEPOSIT["requestUUID"] not in _key(DEPOSIT)


@pytest.mark.parametrize("field", ["txId", "chainName", "symbol", "toAddress"])
def test_deposits_differing_in_one_key_field_are_two_events(field: str) -> None:
    assert _key({**DEPOSIT, field: DEPOSIT[field] + "x"}) != _key(DEPOSIT)


def test_deposit_key_fields_cannot_be_shifted_into_each_other() -> None:
    a = {**DEPOSIT, "chainName": "TRON", "symbol": "USDTTRX"}
    b = {**DEPOSIT, "chainName": "TRONUSDT", "symbol": "TRX"}
    assert _key(a) != _key(b)


def test_withdraw_result_key_is_the_tx_id() -> None:
    retry = {**WITHDRAW, "requestUUID": "new", "trackingId": "999", "amount": "3"}
    assert _key(WITHDRAW) == _key(retry) == f"withdraw:{WITHDRAW['txId']}"


def test_other_keys_are_type_tracking_id_and_call_back_id() -> None:
    gas = {**REQUEST_WITHDRAW, "type": 7}
    assert _key(gas) == _key({**gas, "requestUUID": "another"}) == 'other:[7,"102004","D611657466"]'
    assert _key(gas) != _key({**gas, "type": 6})
    assert _key(gas) != _key({**gas, "trackingId": "102005"})
    assert _key(gas) != _key({**gas, "callBackId": "D611657467"})
    address = {**REQUEST_WITHDRAW, "type": 4, "callBackId": None, "newAddress": "TNew"}
    assert _key(address) == 'other:[4,"102004",null]'


# -- answers ---------------------------------------------------------------------------------


def test_success_answer_echoes_the_request_encrypted() -> None:
    callback = uu.parse_callback(WITHDRAW)
    body = uu.answer(_public(), uu.ErrCode.OK, data=uu.echo(callback.header))
    assert body["errCode"] == 0 and body["message"] == ""
    assert isinstance(body["data"], str)
    assert _waas_read(body["data"]) == {
        "requestUUID": WITHDRAW["requestUUID"],
        "tenantUserId": "1945",
        "type": 3,
        "trackingId": "102003",
        "callBackId": "250624392590001",
    }
    assert len(base64.b64decode(body["data"])) == 2 * 128  # more than 117 bytes: two chunks


def test_failure_answer_says_why_and_is_never_zero() -> None:
    assert uu.answer(_public(), uu.ErrCode.INVALID) == {"errCode": 4000, "message": "invalid", "data": ""}
    body = uu.answer(_public(), uu.ErrCode.UNAVAILABLE, message="queue unavailable", data={"type": 1})
    assert body["errCode"] == 5030 and body["message"] == "queue unavailable"
    assert isinstance(body["data"], str) and _waas_read(body["data"]) == {"type": 1}
    assert all(code.value != 0 for code in uu.ErrCode if code is not uu.ErrCode.OK)


def test_the_demo_helpers_play_the_waas() -> None:
    private = private_from_crypto(_waas_key())
    sent = encrypt_as_waas({**DEPOSIT, "amount": Decimal("2.5")}, private)
    assert uu.decrypt_body(sent, _public()) == {**DEPOSIT, "amount": "2.5"}
    assert decrypt_as_waas(uu.encrypt_data({"x": "y"}, _public()), private) == {"x": "y"}


# -- API key and stored form -----------------------------------------------------------------

KEYS = ("k-current-0123456789abcdef", "k-previous-0123456789abcdef")


@pytest.mark.parametrize("presented", KEYS)
def test_any_configured_api_key_is_accepted(presented: str) -> None:
    uu.check_api_key(presented, KEYS)


@pytest.mark.parametrize(
    ("presented", "reason"),
    [(None, "missing"), ("", "missing"), ("k-current-0123456789abcde", "wrong"), (KEYS[0] + "x", "wrong")],
)
def test_missing_or_wrong_api_key_is_unauthorized(presented: str | None, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        uu.check_api_key(presented, KEYS)


def test_stored_payload_is_json_safe_exact_and_uses_the_documented_names() -> None:
    payload = uu.to_payload(uu.parse_callback({**DEPOSIT, "amount": "2.500000000000", "fromAddress": None}))
    assert json.loads(json.dumps(payload)) == payload
    assert payload == {k: v for k, v in DEPOSIT.items() if k != "fromAddress"}
    assert uu.to_payload(uu.parse_callback({**DEPOSIT, "amount": Decimal("1E+3")}))["amount"] == "1000"
    result = uu.to_payload(uu.parse_callback({**WITHDRAW, "txTimeStamp": "17"}))
    assert result == {**WITHDRAW, "txTimeStamp": 17}


@pytest.mark.parametrize(
    ("payload", "extra"),
    [
        ({**REQUEST_WITHDRAW, "type": 4, "newAddress": "TNew"}, {"newAddress": "TNew"}),
        ({**REQUEST_WITHDRAW, "type": 5, "toAddress": "TBad"}, {"toAddress": "TBad"}),
        ({**REQUEST_WITHDRAW, "type": 7}, {}),
    ],
)
def test_stored_payload_of_other_types(payload: dict[str, Any], extra: dict[str, Any]) -> None:
    assert uu.to_payload(uu.parse_callback(payload)) == {**REQUEST_WITHDRAW, "type": payload["type"], **extra}
