from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Mapping
from decimal import Decimal
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import InvalidInput
from shared.evm import erc20_calldata
from shared.policy.model import Operation
from shared.providers.chainup_cosigner import (
    FAILURE,
    SUCCESS,
    CallbackType,
    Kind,
    VerifyPublicHash,
    Web3Callback,
    WithdrawCallback,
    answer_verify_public_hash,
    decision_request,
    decode_body,
    fingerprint,
    memo_key,
    parse_callback,
    public_key_hash,
)

# DEPLOY_EN §5 example, with the documented `pending_round` added.
WITHDRAW = {
    "type": "sign_start",
    "withdraw_id": 12345,
    "request_id": "unique_request_id",
    "pending_round": False,
    "from": "0xc70d1eebb7c687ec8d56bead73f104d41e6e0bda",
    "to": "0x5EDc9177997Bf6B4db559A5C184051858B3B3704",
    "amount": "100.5",
    "symbol": "USDTERC20",
    "memo": "optional_memo",
}
# The seed's Web3 example, minus its trailing comma (a docs artefact: the co-signer is a Go binary
# whose encoder never writes one).
WEB3 = {
    "type": "sign_start",
    "trans_id": 432,
    "request_id": "0000000003",
    "pending_round": False,
    "from": "0xc70d1eebb7c687ec8d56bead73f104d41e6e0bda",
    "to": "0x5EDc9177997Bf6B4db559A5C184051858B3B3704",
    "amount": 0,
    "main_chain_symbol": "HECO",
    "input_data": "0xca718c65",
    "interactive_contract": "0xe012F3957226894B1a2a44b3ef5070417a069dC2",
    "txid": "",
}


def _parse(body: Mapping[str, object], kind: Kind = Kind.WITHDRAW) -> object:
    return parse_callback(decode_body(json.dumps(body).encode()), kind)


def _withdraw(**changes: object) -> WithdrawCallback:
    parsed = _parse({**WITHDRAW, **changes})
    assert isinstance(parsed, WithdrawCallback)
    return parsed


def _web3(**changes: object) -> Web3Callback:
    parsed = _parse({**WEB3, **changes}, Kind.WEB3)
    assert isinstance(parsed, Web3Callback)
    return parsed


def test_withdraw_example_parses_with_withdraw_id() -> None:
    cb = _withdraw()
    assert (cb.type, cb.transfer_id, cb.request_id, cb.pending_round) == (
        CallbackType.SIGN_START,
        "12345",
        "unique_request_id",
        False,
    )
    assert (cb.amount, cb.symbol, cb.memo, cb.outputs, cb.txid) == (
        Decimal("100.5"),
        "USDTERC20",
        "optional_memo",
        (),
        None,
    )


def test_transfer_id_is_accepted_and_conflicting_ids_are_not() -> None:
    body = {k: v for k, v in WITHDRAW.items() if k != "withdraw_id"}
    assert _parse({**body, "transfer_id": "77"}).transfer_id == "77"  # type: ignore[attr-defined]
    assert _withdraw(transfer_id=12345).transfer_id == "12345"
    for bad in ({"transfer_id": 1}, {}):
        with pytest.raises(InvalidInput, match="transfer_id"):
            _parse({**body, "withdraw_id": 2, **bad} if bad else body)


def test_withdraw_decision_request_carries_destination_limit_facts() -> None:
    request = decision_request(_withdraw(pending_round=True))
    assert (request.provider, request.operation, request.order_ref) == (
        "chainup_cosigner",
        Operation.WITHDRAW,
        "unique_request_id",
    )
    (transfer,) = request.transfers
    assert (transfer.chain, transfer.asset, transfer.amount) == ("ETH", "USDT", Decimal("100.5"))
    assert transfer.destination == "0x5edc9177997bf6b4db559a5c184051858b3b3704"
    assert ("pending_round", "true") in request.attributes


@pytest.mark.parametrize(
    ("symbol", "chain", "asset"),
    [
        ("USDTERC20", "ETH", "USDT"),
        ("usdttrc20", "TRX", "USDT"),  # symbols compare upper-case
        ("USDCBEP20", "BSC", "USDC"),
        ("ETH", "ETH", "ETH"),  # a native coin names its own chain
        ("TRX", "TRX", "TRX"),
        ("FOOCOIN", "FOOCOIN", "FOOCOIN"),  # unknown: kept whole, not refused
        ("ERC20", "ERC20", "ERC20"),  # a standard with no token name before it is no token
    ],
)
def test_the_symbol_names_the_chain_and_the_asset(symbol: str, chain: str, asset: str) -> None:
    cb = _withdraw(symbol=symbol)
    (transfer,) = decision_request(cb).transfers
    assert (transfer.chain, transfer.asset, cb.main_chain_symbol) == (chain, asset, None)


@pytest.mark.parametrize(
    ("symbol", "main_chain_symbol", "chain", "asset"),
    [
        ("USDTERC20", "eth", "ETH", "USDT"),
        ("USDTBEP20", "BNB", "BNB", "USDT"),  # the callback's own chain name wins over the suffix's
        ("FOOCOIN", "HECO", "HECO", "FOOCOIN"),  # an unknown symbol is the asset on the named chain
        ("USDTTRC20", " ", "TRX", "USDT"),  # blank: as if absent
    ],
)
def test_a_main_chain_symbol_sent_with_a_withdrawal_names_the_chain(
    symbol: str, main_chain_symbol: str, chain: str, asset: str
) -> None:
    (transfer,) = decision_request(_withdraw(symbol=symbol, main_chain_symbol=main_chain_symbol)).transfers
    assert (transfer.chain, transfer.asset) == (chain, asset)


def test_outputs_become_one_transfer_each() -> None:
    outputs = [{"address": "bc1qa", "amount": "0.1"}, {"address": "bc1qb", "amount": 2, "memo": "x"}]
    for value in (outputs, json.dumps(outputs)):
        cb = _withdraw(symbol="btc", outputs=value)
        assert [(t.chain, t.asset, t.destination, t.amount) for t in decision_request(cb).transfers] == [
            ("BTC", "BTC", cb.to_address.lower(), Decimal("100.5")),
            ("BTC", "BTC", "bc1qa", Decimal("0.1")),
            ("BTC", "BTC", "bc1qb", Decimal(2)),
        ]
    token_outputs = decision_request(_withdraw(symbol="USDTTRC20", outputs=outputs)).transfers
    assert {(t.chain, t.asset) for t in token_outputs} == {("TRX", "USDT")}
    assert _withdraw(outputs="").outputs == ()
    for bad in ("optional_outputs", [{"address": "a"}], {"address": "a", "amount": "1"}):
        with pytest.raises(InvalidInput, match="outputs"):
            _withdraw(outputs=bad)


def test_web3_seed_example() -> None:
    cb = _web3()
    assert (cb.trans_id, cb.amount, cb.unlimited, cb.main_chain_symbol, cb.input_data) == (
        "432",
        Decimal(0),
        False,
        "HECO",
        "0xca718c65",
    )
    (transfer,) = decision_request(cb).transfers
    assert transfer.contract == "0xe012f3957226894b1a2a44b3ef5070417a069dc2"
    assert decision_request(cb).operation is Operation.WEB3


SPENDER = "0x000000000000000000000000000000000000dead"


def _call(method: str, counterparty: str, amount: int) -> str:
    return "0x" + erc20_calldata(method, counterparty, amount).hex()


def test_erc20_calldata_is_a_transfer_of_its_own() -> None:
    # The callback says "0 to the token contract"; the calldata sends 5e6 units to SPENDER.
    request = decision_request(_web3(input_data=_call("transfer", SPENDER, 5_000_000)))
    (token,) = request.transfers
    assert (token.asset, token.destination, token.contract, token.amount, token.unlimited_approval) == (
        "0xe012f3957226894b1a2a44b3ef5070417a069dc2",
        SPENDER,
        "0xe012f3957226894b1a2a44b3ef5070417a069dc2",
        None,  # token decimals are unknown here
        False,
    )


def test_an_unlimited_approve_in_calldata_counts_whatever_amount_says() -> None:
    for amount in (0, -1):
        request = decision_request(_web3(amount=amount, input_data=_call("approve", SPENDER, 2**256 - 1)))
        assert [(t.destination, t.unlimited_approval) for t in request.transfers] == [(SPENDER, True)]
    limited = decision_request(_web3(input_data=_call("approve", SPENDER, 0))).transfers
    assert [(t.amount, t.unlimited_approval) for t in limited] == [(Decimal(0), False)]
    native_too = decision_request(_web3(amount="1.5", input_data=_call("transfer", SPENDER, 1))).transfers
    assert [t.asset for t in native_too] == ["0xe012f3957226894b1a2a44b3ef5070417a069dc2", "HECO"]


def test_malformed_erc20_calldata_is_refused() -> None:
    for bad in ("0x095ea7b3", "0xa9059cbb" + "00" * 63, "0xa9059cbb" + "ff" * 64):
        with pytest.raises(InvalidInput, match="input_data"):
            _web3(input_data=bad)


@pytest.mark.parametrize("amount", [-1, "-1", "-1.0"])
def test_minus_one_is_an_unlimited_approval(amount: object) -> None:
    cb = _web3(amount=amount)
    (transfer,) = decision_request(cb).transfers
    assert cb.unlimited and transfer.unlimited_approval and transfer.amount is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", -2),
        ("amount", "1e99999"),
        ("amount", True),
        ("amount", "NaN"),
        ("amount", None),
        ("pending_round", "false"),
        ("input_data", "ca718c65zz"),
        ("input_data", "0xca718c6"),
        ("trans_id", -1),
        ("trans_id", "4²"),
        ("request_id", ""),
        ("from", 5),
        ("type", "sign_end"),
    ],
)
def test_web3_rejects_bad_fields(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=field):
        _web3(**{field: value})


def test_withdraw_refuses_negative_and_float_amounts() -> None:
    with pytest.raises(InvalidInput, match="amount"):
        _withdraw(amount="-1")  # only the Web3 URL knows "unlimited"
    with pytest.raises(InvalidInput, match="amount"):
        parse_callback({**WITHDRAW, "amount": 1.5}, Kind.WITHDRAW)  # a float means precision already lost


def test_json_numbers_stay_exact_and_constants_are_refused() -> None:
    cb = parse_callback(
        decode_body(b'{"amount": 0.1000000000000000000000001, %s' % json.dumps(WITHDRAW).encode()[1:]), Kind.WITHDRAW
    )
    assert isinstance(cb, WithdrawCallback) and cb.amount == Decimal("100.5")  # the last duplicate key wins
    exact = decode_body(b'{"amount": 0.1000000000000000000000001}')
    assert exact == {"amount": Decimal("0.1000000000000000000000001")}
    for raw in (b'{"amount": NaN}', b'{"a": Infinity}', b"\xff", b"[1,"):
        with pytest.raises(InvalidInput):
            decode_body(raw)


def test_pending_round_missing_means_regular_and_gets_its_own_memo_key() -> None:
    body = {k: v for k, v in WITHDRAW.items() if k != "pending_round"}
    regular = _parse(body)
    speedup = _withdraw(pending_round=True)
    assert isinstance(regular, WithdrawCallback) and not regular.pending_round
    assert memo_key(Kind.WITHDRAW, regular) == "withdraw:sign_start:unique_request_id:regular"
    assert memo_key(Kind.WITHDRAW, speedup) == "withdraw:sign_start:unique_request_id:speedup"
    assert memo_key(Kind.WEB3, _web3()) == "web3:sign_start:0000000003:regular"


def test_fingerprint_follows_content_not_txid() -> None:
    base = fingerprint(_withdraw())
    assert fingerprint(_withdraw(type="sign_success", txid="0xabc")) == base
    assert fingerprint(_withdraw(amount="100.50")) == base  # same number, other spelling
    assert fingerprint(_withdraw(amount="100.6")) != base
    assert fingerprint(_withdraw(to="0x0000000000000000000000000000000000000001")) != base
    assert fingerprint(_web3()) != fingerprint(_web3(input_data="0x12345678"))
    # The chain is part of the question when the callback names one; absent or blank, nothing changes.
    assert fingerprint(_withdraw(main_chain_symbol="ETH")) != base
    assert fingerprint(_withdraw(main_chain_symbol="")) == base


def test_verify_public_hash_only_on_the_withdraw_url() -> None:
    body = {"type": "verify_public_hash", "app_id": "app", "client_system_pubkey_hash": "", "verify_sign_pub_hash": ""}
    assert isinstance(_parse(body), VerifyPublicHash)
    with pytest.raises(InvalidInput, match="type"):
        _parse(body, Kind.WEB3)


@cache
def _pem(which: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _java_hash(app_id: str, pem: str) -> str:
    """DEPLOY_EN §7's recipe, literally: strip newlines and the armour lines, HMAC-SHA256 by app_id."""
    message = pem.replace("\n", "").replace("-----BEGIN PUBLIC KEY-----", "").replace("-----END PUBLIC KEY-----", "")
    return hmac.new(app_id.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_public_key_hash_matches_the_documented_recipe() -> None:
    assert public_key_hash("app-1", _pem(0)) == _java_hash("app-1", _pem(0))
    assert public_key_hash("app-1", _pem(0).replace("\n", "\r\n")) == _java_hash("app-1", _pem(0))
    assert public_key_hash("app-2", _pem(0)) != public_key_hash("app-1", _pem(0))


def test_verify_public_hash_answer() -> None:
    check = VerifyPublicHash("app-1", _java_hash("app-1", _pem(0)).upper(), _java_hash("app-1", _pem(1)))
    keys = {"client_system_public_key_pem": _pem(0), "verify_sign_public_key_pem": _pem(1)}
    assert answer_verify_public_hash(check, app_id="app-1", **keys) == {
        "client_system_pubkey_hash_valid": SUCCESS,
        "verify_sign_pub_hash_valid": SUCCESS,
    }
    swapped = {"client_system_public_key_pem": _pem(1), "verify_sign_public_key_pem": _pem(0)}
    assert set(answer_verify_public_hash(check, app_id="app-1", **swapped).values()) == {FAILURE}
    assert set(answer_verify_public_hash(check, app_id="other", **keys).values()) == {FAILURE}
    unset = answer_verify_public_hash(
        VerifyPublicHash("app-1", "ü", ""),
        app_id=None,
        client_system_public_key_pem=_pem(0),
        verify_sign_public_key_pem=None,
    )
    assert unset == {"client_system_pubkey_hash_valid": FAILURE, "verify_sign_pub_hash_valid": SUCCESS}


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.decimals(allow_nan=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20,
)
_keys = st.sampled_from([*WITHDRAW, *WEB3, "transfer_id", "outputs", "app_id"])


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(_keys, _json, max_size=5), kind=st.sampled_from(list(Kind)), drop=st.sets(_keys))
def test_mutated_bodies_raise_only_invalid_input(changes: dict[str, object], kind: Kind, drop: set[str]) -> None:
    body = {k: v for k, v in {**(WITHDRAW if kind is Kind.WITHDRAW else WEB3), **changes}.items() if k not in drop}
    try:
        cb = parse_callback(body, kind)
    except InvalidInput:
        return
    if not isinstance(cb, VerifyPublicHash):
        decision_request(cb)
        fingerprint(cb)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_raise_only_invalid_input(raw: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        parse_callback(decode_body(raw), Kind.WITHDRAW)
