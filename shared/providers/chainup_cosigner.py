"""ChainUp MPC Co-Signer approval callbacks: plain JSON in, plain `SUCCESS`/`FAILURE` out.

The co-signer (deployed in the customer's own network) asks before it signs a withdrawal or a
Web3 transaction (`sign_start`), reports the txid afterwards (`sign_success`) and, on the
withdraw URL only, runs a configuration self-check (`verify_public_hash`). The body is neither
signed nor encrypted (protocols/chainup_wyre.md §1.1), so this codec is pure parsing; the
gateway adds the optional token/allowlist protection.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from shared.errors import InvalidInput
from shared.evm import Erc20Call, decode_erc20_call
from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.model import DecisionRequest, Operation, Transfer
from shared.providers import jsonfields as fields
from shared.providers.chainup_symbols import chain_and_asset

PROVIDER = "chainup_cosigner"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"

_MAX_HEX = 256 * 1024  # calldata of a contract interaction
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_E = TypeVar("_E", bound=enum.Enum)


class Kind(enum.StrEnum):
    """Which of the two callback URLs the request came to."""

    WITHDRAW = "withdraw"
    WEB3 = "web3"


class CallbackType(enum.StrEnum):
    SIGN_START = "sign_start"
    SIGN_SUCCESS = "sign_success"
    VERIFY_PUBLIC_HASH = "verify_public_hash"


@dataclass(frozen=True, slots=True)
class Output:
    """One destination of a multi-output (UTXO) withdrawal."""

    address: str
    amount: Decimal
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class WithdrawCallback:
    type: CallbackType
    transfer_id: str  # `transfer_id` in the parameter table, `withdraw_id` in the examples
    request_id: str
    pending_round: bool
    from_address: str
    to_address: str
    amount: Decimal
    symbol: str
    memo: str | None
    outputs: tuple[Output, ...]
    txid: str | None
    main_chain_symbol: str | None = None  # [I] not documented for withdrawals; used when sent


@dataclass(frozen=True, slots=True)
class Web3Callback:
    type: CallbackType
    trans_id: str
    request_id: str
    pending_round: bool
    from_address: str
    to_address: str
    amount: Decimal  # -1 when `unlimited`
    unlimited: bool  # `amount` -1: an approval of "everything"
    main_chain_symbol: str
    input_data: str  # lower-case hex with 0x
    erc20: Erc20Call | None  # the ERC-20 transfer/approve that `input_data` encodes, if it is one
    interactive_contract: str
    txid: str | None


@dataclass(frozen=True, slots=True)
class VerifyPublicHash:
    app_id: str
    client_system_pubkey_hash: str
    verify_sign_pub_hash: str


SignCallback = WithdrawCallback | Web3Callback
Callback = WithdrawCallback | Web3Callback | VerifyPublicHash


# -- decoding --------------------------------------------------------------------------------


def decode_body(raw: bytes) -> object:
    """Decode a co-signer JSON body; numbers stay exact (see `jsonfields.decode_json`)."""
    return fields.decode_json(raw)


def parse_callback(data: object, kind: Kind) -> Callback:
    """Parse a decoded co-signer body that arrived on the `kind` URL."""
    if not isinstance(data, Mapping):
        raise InvalidInput("body", "expected a JSON object")
    type_ = _enum(data, "type", CallbackType)
    if type_ is CallbackType.VERIFY_PUBLIC_HASH:
        if kind is not Kind.WITHDRAW:
            # DEPLOY_EN §5: the self-check uses the withdraw URL only.
            raise InvalidInput("type", "verify_public_hash is only sent to the withdraw URL")
        return VerifyPublicHash(
            app_id=fields.text(data, "app_id"),
            client_system_pubkey_hash=fields.opt_text(data, "client_system_pubkey_hash") or "",
            verify_sign_pub_hash=fields.opt_text(data, "verify_sign_pub_hash") or "",
        )
    if kind is Kind.WITHDRAW:
        return _withdraw(data, type_)
    return _web3(data, type_)


def _withdraw(data: fields.Fields, type_: CallbackType) -> WithdrawCallback:
    # The parameter table says `transfer_id`, the examples say `withdraw_id` (§1.2): accept either,
    # but not two different values.
    ids = {_ident(data, name) for name in ("transfer_id", "withdraw_id") if data.get(name) is not None}
    if len(ids) != 1:
        raise InvalidInput("transfer_id", "exactly one of transfer_id/withdraw_id is required")
    return WithdrawCallback(
        type=type_,
        transfer_id=ids.pop(),
        request_id=fields.text(data, "request_id"),
        pending_round=_pending_round(data),
        from_address=fields.text(data, "from"),
        to_address=fields.text(data, "to"),
        amount=fields.amount(data.get("amount"), "amount"),
        symbol=normalize_symbol(fields.text(data, "symbol")),
        memo=fields.opt_text(data, "memo"),
        outputs=_outputs(data.get("outputs")),
        txid=fields.opt_text(data, "txid"),
        main_chain_symbol=_opt_symbol(data, "main_chain_symbol"),
    )


def _web3(data: fields.Fields, type_: CallbackType) -> Web3Callback:
    amount = fields.amount(data.get("amount"), "amount", allow_unlimited=True)
    input_data = fields.opt_text(data, "input_data", limit=_MAX_HEX) or ""
    if input_data and not _HEX.fullmatch(input_data):
        raise InvalidInput("input_data", "expected 0x-prefixed hex bytes")
    return Web3Callback(
        type=type_,
        trans_id=_ident(data, "trans_id"),
        request_id=fields.text(data, "request_id"),
        pending_round=_pending_round(data),
        from_address=fields.text(data, "from"),
        to_address=fields.text(data, "to"),
        amount=amount,
        unlimited=amount == -1,
        main_chain_symbol=normalize_symbol(fields.text(data, "main_chain_symbol")),
        input_data=input_data.lower(),
        erc20=_erc20(input_data),
        interactive_contract=fields.opt_text(data, "interactive_contract") or "",
        txid=fields.opt_text(data, "txid"),
    )


# -- typed field readers ---------------------------------------------------------------------


def _ident(data: fields.Fields, name: str) -> str:
    # Typed Integer in the docs; SDKs treat ids as flexible, so a digit string is fine too.
    return str(fields.uint(data, name))


def _opt_symbol(data: fields.Fields, name: str) -> str | None:
    value = fields.opt_text(data, name)
    return None if value is None else normalize_symbol(value)


def _erc20(input_data: str) -> Erc20Call | None:
    # A known ERC-20 selector with a malformed body is refused: the token may still accept it,
    # and we could not say what it would do.
    try:
        return decode_erc20_call(bytes.fromhex(input_data[2:])) if input_data else None
    except InvalidInput as e:
        raise InvalidInput("input_data", e.reason) from None


def _pending_round(data: fields.Fields) -> bool:
    value = data.get("pending_round")
    # [I] The withdraw example in DEPLOY_EN omits it: a missing flag means a regular round.
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise InvalidInput("pending_round", "expected a boolean")


def _enum(data: fields.Fields, name: str, enum_type: type[_E]) -> _E:
    value = data.get(name)
    try:
        return enum_type(value if isinstance(value, str) else "")
    except ValueError:
        raise InvalidInput(name, f"unknown value {str(value)[:40]!r}") from None


def _outputs(value: object) -> tuple[Output, ...]:
    # DEPLOY_EN documents `outputs` as an optional string; ChainUp's withdraw records carry a list of
    # {address, amount, memo}. [I] Accept the list or a JSON string of it; anything else is refused,
    # because every output is a destination the policy has to see.
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        try:
            value = decode_body(value.encode())
        except InvalidInput:
            raise InvalidInput("outputs", "a string that is not a JSON list") from None
    if not isinstance(value, list) or len(value) > 1000:
        raise InvalidInput("outputs", "expected a list of {address, amount}")
    return tuple(_output(item, i) for i, item in enumerate(value))


def _output(item: object, index: int) -> Output:
    if not isinstance(item, Mapping):
        raise InvalidInput(f"outputs[{index}]", "expected an object")
    return Output(
        address=fields.text(item, "address"),
        amount=fields.amount(item.get("amount"), f"outputs[{index}].amount"),
        memo=fields.opt_text(item, "memo"),
    )


# -- policy question, memo, fingerprint ------------------------------------------------------


def decision_request(callback: SignCallback) -> DecisionRequest:
    """The provider-neutral question a `sign_start` asks; `order_ref` is the merchant's request_id."""
    if isinstance(callback, WithdrawCallback):
        operation, transfers = Operation.WITHDRAW, _withdraw_transfers(callback)
        extra: tuple[tuple[str, str], ...] = (("transfer_id", callback.transfer_id),)
    else:
        operation, transfers = Operation.WEB3, _web3_transfers(callback)
        extra = (("trans_id", callback.trans_id), ("method", callback.input_data[:10]))
    return DecisionRequest(
        provider=PROVIDER,
        operation=operation,
        request_id=callback.request_id,
        transfers=transfers,
        order_ref=callback.request_id,
        attributes=(("pending_round", "true" if callback.pending_round else "false"), *extra),
    )


def _withdraw_transfers(callback: WithdrawCallback) -> tuple[Transfer, ...]:
    # With `outputs` (UTXO), `to`/`amount` are judged as well as every output: stricter, never looser.
    chain, asset = chain_and_asset(callback.symbol, callback.main_chain_symbol)
    main = Transfer(chain, asset, callback.amount, normalize_address(callback.to_address))
    return (main, *(Transfer(chain, asset, o.amount, normalize_address(o.address)) for o in callback.outputs))


def _web3_transfers(callback: Web3Callback) -> tuple[Transfer, ...]:
    """What the transaction moves. The callback's `to`/`amount` describe the call itself; when its
    calldata is an ERC-20 transfer or approve, the tokens go to (or may be taken by) the address
    *inside* the calldata, so that is a transfer of its own: destination lists and the
    unlimited-approval rule must see it, whatever the descriptive `amount` says."""
    chain = callback.main_chain_symbol
    contract = normalize_address(callback.interactive_contract or callback.to_address)
    call, transfers = callback.erc20, []
    if call is not None:
        unlimited = call.unlimited or (callback.unlimited and call.method == "approve")
        # The token's decimals are not in the callback: only a zero amount is known exactly.
        amount = Decimal(0) if call.amount == 0 and not unlimited else None
        transfers.append(Transfer(chain, contract, amount, call.counterparty, contract, unlimited))
    if call is None or callback.amount > 0 or (callback.unlimited and call.method != "approve"):
        amount = None if callback.unlimited else callback.amount
        destination = normalize_address(callback.to_address)
        transfers.append(Transfer(chain, chain, amount, destination, contract, callback.unlimited))
    return tuple(transfers)


def memo_key(kind: Kind, callback: SignCallback) -> str:
    """Same question, same answer: the memo is keyed by (url, type, request_id, pending_round)."""
    round_ = "speedup" if callback.pending_round else "regular"
    return f"{kind.value}:{callback.type.value}:{callback.request_id}:{round_}"


def fingerprint(callback: SignCallback) -> str:
    """SHA-256 over the content that the answer depends on; a reused request_id with another
    fingerprint is a replay, not a retry. `txid` is left out: it is absent on `sign_start`."""
    if isinstance(callback, WithdrawCallback):
        content: list[object] = [
            callback.transfer_id,
            callback.from_address,
            callback.to_address,
            str(callback.amount.normalize()),
            callback.symbol,
            callback.memo,
            [[o.address, str(o.amount.normalize()), o.memo] for o in callback.outputs],
        ]
        if callback.main_chain_symbol is not None:  # appended only when sent: earlier memos keep theirs
            content.append(callback.main_chain_symbol)
    else:
        content = [
            callback.trans_id,
            callback.from_address,
            callback.to_address,
            str(callback.amount.normalize()),
            callback.main_chain_symbol,
            callback.input_data,
            callback.interactive_contract,
        ]
    canonical = json.dumps([callback.request_id, *content], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- configuration self-check ----------------------------------------------------------------


def public_key_hash(app_id: str, public_key_pem: str) -> str:
    """HMAC-SHA256 (key `app_id`) of the PEM without its header/footer lines and newlines, hex."""
    body = "".join(
        line.strip() for line in public_key_pem.strip().splitlines() if line.strip() and not line.startswith("-----")
    )
    return hmac.new(app_id.encode(), body.encode(), hashlib.sha256).hexdigest()


def answer_verify_public_hash(
    check: VerifyPublicHash,
    *,
    app_id: str | None,
    client_system_public_key_pem: str | None,
    verify_sign_public_key_pem: str | None,
) -> dict[str, str]:
    """The JSON answer to the self-check: each hash is SUCCESS only if it matches our configured key.

    [I] An empty hash with no key configured on our side counts as a match (the optional "sign"
    key pair was not imported on either end). A different `app_id` fails both.
    """
    same_app = app_id is None or hmac.compare_digest(check.app_id.encode(), app_id.encode())

    def valid(received: str, pem: str | None) -> str:
        if not same_app:
            return FAILURE
        if pem is None:
            return SUCCESS if received == "" else FAILURE
        expected = public_key_hash(check.app_id, pem)
        return SUCCESS if hmac.compare_digest(expected.encode(), received.lower().encode()) else FAILURE

    return {
        "client_system_pubkey_hash_valid": valid(check.client_system_pubkey_hash, client_system_public_key_pem),
        "verify_sign_pub_hash_valid": valid(check.verify_sign_pub_hash, verify_sign_public_key_pem),
    }
