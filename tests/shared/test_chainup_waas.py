from __future__ import annotations

import base64
import contextlib
import json
from decimal import Decimal
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import InvalidInput
from shared.policy.model import Operation
from shared.providers.chainup_cosigner import Kind, WithdrawCallback, decision_request, parse_callback
from shared.providers.chainup_samples import COSIGNER_WITHDRAW
from shared.providers.chainup_waas import (
    Family,
    Side,
    confirmation_answer,
    confirmation_fingerprint,
    confirmation_request,
    decrypt,
    idempotency_key,
    parse_form,
    parse_notification,
    parse_withdraw_confirmation,
)
from shared.rsablocks import (
    RsaPrivate,
    RsaPublic,
    private_from_crypto,
    public_from_crypto,
)


@cache
def _crypto_key(which: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public(which: int = 0) -> RsaPublic:
    return public_from_crypto(_crypto_key(which).public_key())


def _private(which: int = 0) -> RsaPrivate:
    return private_from_crypto(_crypto_key(which))


def chainup_encrypt(plaintext: bytes, *, chunk: int = 234, urlsafe: bool = True, which: int = 0) -> str:
    """What ChainUp's helpers do, written out: type-1 pad each chunk, m^d mod n, Base64.

    Java RSAHelper cuts 234-byte chunks and strips `=` from URL-safe Base64; the Go SDK cuts
    k-11 = 245. Both must open the same way on our side.
    """
    numbers = _crypto_key(which).private_numbers()
    n, d = numbers.public_numbers.n, numbers.d
    out = b""
    for i in range(0, len(plaintext), chunk):
        block = plaintext[i : i + chunk]
        em = b"\x00\x01" + b"\xff" * (256 - 3 - len(block)) + b"\x00" + block
        out += pow(int.from_bytes(em, "big"), d, n).to_bytes(256, "big")
    return base64.urlsafe_b64encode(out).decode().rstrip("=") if urlsafe else base64.b64encode(out).decode()


def chainup_decrypt(data: str, which: int = 0) -> bytes:
    """Open a type-1 ciphertext with raw arithmetic, the way the Go SDK does (c^e mod n, strip 01 FF.. 00)."""
    numbers = _crypto_key(which).private_numbers().public_numbers
    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    out = b""
    for i in range(0, len(raw), 256):
        em = pow(int.from_bytes(raw[i : i + 256], "big"), numbers.e, numbers.n).to_bytes(256, "big")
        assert em[:2] == b"\x00\x01"
        out += em[em.index(b"\x00", 2) + 1 :]
    return out


# The current WaaS V2 deposit fields (§2A), with the numbers-as-strings of the Go SDK's webhook type.
DEPOSIT = {
    "charset": "utf-8",
    "version": "v2",
    "side": "deposit",
    "notify_time": "2024-05-01 10:00:00",
    "id": "45325",
    "uid": 10596,
    "symbol": "usdterc20",
    "amount": "1250.000000000000000001",
    "address_to": "0x5EDc9177997Bf6B4db559A5C184051858B3B3704",
    "created_at": 1539050731000,
    "updated_at": "1543483252000",
    "txid": "0x" + "ab" * 32,
    "confirmations": "12",
    "status": 1,
}
WITHDRAW = {
    **DEPOSIT,
    "side": "withdraw",
    "request_id": "order-77",
    "withdraw_fee_symbol": "ETH",
    "withdraw_fee": "0.001",
    "fee_symbol": "ETH",
    "real_fee": 0,
    "status": "5",
}
MPC_WEB3 = {
    "side": "web3-trans",
    "id": 991,
    "request_id": "web3-1",
    "sub_wallet_id": 1000537,
    "symbol": "ETH",
    "amount": "0",
    "main_chain_symbol": "ETH",
    "interactive_contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
    "input_data": "0x095ea7b3" + "00" * 64,
    "trans_type": 0,
    "status": 2000,
}
CONFIRM = {
    "time": 1700000000000,
    "charset": "utf-8",
    "version": "v2",
    "request_id": "order-77",
    "from_uid": "10596",
    "to_address": "0x5EDc9177997Bf6B4db559A5C184051858B3B3704",
    "amount": "12.5",
    "symbol": "USDTERC20",
    "check_sum": "k3j4h5g6",
}
# A merchant-to-merchant transfer asks at the same URL, naming the other merchant's app id (§2A).
TRANSFER = {k: v for k, v in CONFIRM.items() if k != "to_address"} | {"to": "other-app", "remark": "x"}


def _enc(payload: object, **kwargs: object) -> str:
    return chainup_encrypt(json.dumps(payload).encode(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk", [234, 245])
@pytest.mark.parametrize("urlsafe", [True, False])
def test_both_chunk_sizes_and_alphabets_decrypt(chunk: int, urlsafe: bool) -> None:
    payload = {**WITHDRAW, "memo": "m" * 300}  # several blocks whatever the chunk size
    data = _enc(payload, chunk=chunk, urlsafe=urlsafe)
    assert ("=" in data or "+" in data or "/" in data) or urlsafe
    assert decrypt(data, _public()) == json.loads(json.dumps(payload))


def test_padding_and_whitespace_are_tolerated() -> None:
    data = _enc(DEPOSIT)
    assert decrypt(data + "=" * (-len(data) % 4), _public())["id"] == "45325"  # type: ignore[index]
    assert decrypt(data[:100] + "\r\n" + data[100:], _public())["id"] == "45325"  # type: ignore[index]


def test_tampered_truncated_and_foreign_ciphertext_is_invalid_input() -> None:
    data = _enc(DEPOSIT)
    raw = bytearray(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    raw[300] ^= 0x01  # inside the second block
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    for bad in (tampered, data[:-8], data[:-1], _enc(DEPOSIT, which=1), "not base64 at all!", data + "A"):
        with pytest.raises(InvalidInput, match="data"):
            decrypt(bad, _public())


def test_decrypted_garbage_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="data"):
        decrypt(chainup_encrypt(b"{not json"), _public())
    with pytest.raises(InvalidInput, match="data"):
        parse_notification(decrypt(chainup_encrypt(b"[1, 2]"), _public()))


def test_parse_form() -> None:
    assert parse_form({"app_id": " app ", "data": "abc"}).app_id == "app"
    for form in ({"data": "abc"}, {"app_id": "a"}, {"app_id": "a", "data": ""}, {"app_id": ["a"], "data": "x"}):
        with pytest.raises(InvalidInput):
            parse_form(form)


def test_waas_deposit_is_typed() -> None:
    n = parse_notification(decrypt(_enc(DEPOSIT), _public()))
    assert (n.side, n.family, n.id, n.status, n.status_name) == (Side.DEPOSIT, Family.WAAS_V2, "45325", 1, "success")
    assert (n.symbol, n.amount, n.uid, n.confirmations) == (
        "USDTERC20",
        Decimal("1250.000000000000000001"),
        "10596",
        12,
    )
    assert idempotency_key(n) == "deposit:45325:1"


def test_waas_withdraw_statuses_and_ids_in_either_type_give_one_key() -> None:
    n = parse_notification(WITHDRAW)
    assert (n.status_name, n.request_id, n.withdraw_fee, n.real_fee) == (
        "success",
        "order-77",
        Decimal("0.001"),
        Decimal(0),
    )
    assert idempotency_key(parse_notification({**WITHDRAW, "id": 45325, "status": 5})) == idempotency_key(n)
    assert idempotency_key(parse_notification({**WITHDRAW, "status": 4})) == "withdraw:45325:4"
    assert parse_notification({**WITHDRAW, "status": 2}).status_name == "audit_rejected"


def test_mpc_notifications_use_their_own_codes() -> None:
    web3 = parse_notification(MPC_WEB3)
    assert (web3.family, web3.status_name, web3.trans_type, web3.sub_wallet_id) == (
        Family.MPC,
        "completed",
        0,
        "1000537",
    )
    assert idempotency_key(web3) == "web3-trans:991:2000"
    mpc_deposit = parse_notification({**DEPOSIT, "status": 1100, "sub_wallet_id": 7})
    assert (mpc_deposit.family, mpc_deposit.status_name) == (Family.MPC, "block_confirmed")


def test_web3_notifications_need_no_symbol_or_amount() -> None:
    bare = parse_notification({k: v for k, v in MPC_WEB3.items() if k not in ("symbol", "amount")})
    assert (bare.symbol, bare.amount, idempotency_key(bare)) == (None, None, "web3-trans:991:2000")
    with pytest.raises(InvalidInput, match="symbol"):
        parse_notification({k: v for k, v in WITHDRAW.items() if k != "symbol"})


def test_unknown_status_is_kept_not_refused() -> None:
    n = parse_notification({**WITHDRAW, "status": 9})
    assert (n.status, n.status_name) == (9, "unknown")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("side", "refund"),
        ("side", None),
        ("status", -1),
        ("status", "five"),
        ("status", True),
        ("id", "12a"),
        ("amount", "-3"),
        ("amount", 1.5),
        ("amount", None),
        ("symbol", ""),
        ("txid", ["0x"]),
        ("confirmations", "²"),
    ],
)
def test_bad_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=field):
        parse_notification({**WITHDRAW, field: value})


def test_withdraw_confirmation_question() -> None:
    c = parse_withdraw_confirmation(decrypt(_enc(CONFIRM), _public()))
    assert (c.request_id, c.check_sum, c.time, c.amount, c.to_app_id) == (
        "order-77",
        "k3j4h5g6",
        1700000000000,
        Decimal("12.5"),
        None,
    )
    request = confirmation_request(c)
    assert (request.provider, request.operation, request.order_ref, request.wallet) == (
        "chainup_waas",
        Operation.WITHDRAW,
        "order-77",
        "10596",
    )
    (transfer,) = request.transfers
    assert (transfer.chain, transfer.asset, transfer.amount, transfer.destination) == (
        "ETH",  # USDTERC20: the chain and the token it names, as for the co-signer
        "USDT",
        Decimal("12.5"),
        "0x5edc9177997bf6b4db559a5c184051858b3b3704",
    )


def test_a_confirmation_splits_its_symbol_as_a_cosigner_withdrawal_does() -> None:
    # One mapping for both ChainUp protocols (tests/shared/test_chainup_cosigner.py pins its cases):
    # a policy rule or a registered order on (TRX, USDT) means the same coin from either.
    for symbol in ("usdttrc20", "USDCBEP20", "TRX", "FOOCOIN"):
        withdrawal = parse_callback({**COSIGNER_WITHDRAW, "symbol": symbol}, Kind.WITHDRAW)
        assert isinstance(withdrawal, WithdrawCallback)
        expected = {(t.chain, t.asset) for t in decision_request(withdrawal).transfers}
        for question in ({**CONFIRM, "symbol": symbol}, {**TRANSFER, "symbol": symbol}):
            (transfer,) = confirmation_request(parse_withdraw_confirmation(question)).transfers
            assert {(transfer.chain, transfer.asset)} == expected, symbol
    assert expected == {("FOOCOIN", "FOOCOIN")}  # the last: unknown, kept whole, not refused


def test_confirmation_fingerprints_are_those_remembered_before_the_chain_split() -> None:
    # Pinned: a confirmation answered before USDTERC20 became ETH/USDT is retried after the
    # upgrade with the same fingerprint, so it gets its remembered verdict, not a replay refusal.
    assert confirmation_fingerprint(parse_withdraw_confirmation(CONFIRM)) == (
        "d106715be9dc34ed77d7ce9dfa321ae20aae467632400e69e4e5bf6b74a25cb9"
    )
    assert confirmation_fingerprint(parse_withdraw_confirmation(TRANSFER)) == (
        "408ed62ac3ae8e2e7e8e4466000a1266146f25d7319222491b617bebd24ede50"
    )
    # The symbol as sent is part of it: USDTERC20 and USDTTRC20 are different questions.
    assert confirmation_fingerprint(parse_withdraw_confirmation({**CONFIRM, "symbol": "USDTTRC20"})) != (
        confirmation_fingerprint(parse_withdraw_confirmation(CONFIRM))
    )


def test_merchant_transfer_confirmation_and_ambiguous_targets() -> None:
    c = parse_withdraw_confirmation(TRANSFER)
    assert c.to_app_id == "other-app" and c.to_address is None
    assert confirmation_request(c).transfers[0].destination == "merchant:other-app"
    for bad in ({**CONFIRM, "to": "other-app"}, {k: v for k, v in CONFIRM.items() if k != "to_address"}):
        with pytest.raises(InvalidInput, match="to_address"):
            parse_withdraw_confirmation(bad)
    with pytest.raises(InvalidInput, match="check_sum"):
        parse_withdraw_confirmation({**CONFIRM, "check_sum": ""})


@pytest.mark.parametrize("time", [1700000000000, "1700000000000"])
def test_confirmation_answer_echoes_check_sum_and_time_encrypted(time: object) -> None:
    c = parse_withdraw_confirmation({**CONFIRM, "time": time})
    answer = json.loads(confirmation_answer(c, _private(2)))
    assert set(answer) == {"data"}
    data = answer["data"]
    assert "=" not in data and "+" not in data and "/" not in data  # URL-safe, unpadded, like ChainUp's helpers
    assert json.loads(chainup_decrypt(data, which=2)) == {"check_sum": "k3j4h5g6", "time": time}


def test_long_answers_use_234_byte_chunks() -> None:
    c = parse_withdraw_confirmation({**CONFIRM, "check_sum": "c" * 300})
    data = json.loads(confirmation_answer(c, _private(2)))["data"]
    assert len(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))) == 2 * 256
    plain = json.dumps({"check_sum": "c" * 300, "time": CONFIRM["time"]}, separators=(",", ":")).encode()
    assert len(plain) <= 2 * 234 and chainup_decrypt(data, which=2) == plain


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=700) | st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode()))
def test_arbitrary_data_raises_only_invalid_input(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        parse_notification(decrypt(text, _public()))


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=500))
def test_authentic_garbage_raises_only_invalid_input(plaintext: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        parse_notification(decrypt(chainup_encrypt(plaintext), _public()))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.decimals(allow_nan=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
_keys = st.sampled_from([*WITHDRAW, *MPC_WEB3, *CONFIRM, "to"])


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(_keys, _json, max_size=5), drop=st.sets(_keys))
def test_mutated_payloads_raise_only_invalid_input(changes: dict[str, object], drop: set[str]) -> None:
    for base in (WITHDRAW, CONFIRM):
        body = {k: v for k, v in {**base, **changes}.items() if k not in drop}
        with contextlib.suppress(InvalidInput):
            idempotency_key(parse_notification(body))
        with contextlib.suppress(InvalidInput):
            confirmation_request(parse_withdraw_confirmation(body))


@pytest.mark.parametrize("length", [0, 255, 257])
def test_partial_and_oversized_blocks_are_refused(length: int) -> None:
    with pytest.raises(InvalidInput, match="multiple of 256"):
        decrypt(base64.b64encode(b"\x01" * length).decode() or "AA", _public())
    with pytest.raises(InvalidInput):
        decrypt(base64.b64encode(b"\xff" * 256).decode(), _public())  # not below the modulus
