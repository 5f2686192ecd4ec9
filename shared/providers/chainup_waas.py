"""ChainUp Custody WaaS V2 and MPC notifications: form `app_id` + RSA-encrypted `data`.

ChainUp "encrypts with its private key" (PKCS#1 v1.5 type-1 blocks of 256 bytes, RSA-2048), and
URL-safe Base64-encodes the blocks with the `=` padding stripped (protocols/chainup_wyre.md §2A).
Decrypting with ChainUp's public key is the only authentication there is, so `decrypt` runs on
the exact form value before anything is parsed. The merchant answers notifications with the
plain string `SUCCESS`/`FAILURE`, and the withdrawal second confirmation with encrypted
`{check_sum, time}` (see `confirmation_answer`).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from shared import rsablocks
from shared.errors import InvalidInput
from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.model import DecisionRequest, Operation, Transfer
from shared.providers import jsonfields as fields
from shared.providers.chainup_symbols import chain_and_asset

PROVIDER = "chainup_waas"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"

_MAX_HEX = 256 * 1024
# Java RSAHelper (SDK, WaaSDemo) cuts 234-byte chunks; we send what ChainUp's own helpers send.
SEND_CHUNK = 234


class Side(enum.StrEnum):
    DEPOSIT = "deposit"
    WITHDRAW = "withdraw"
    WEB3 = "web3-trans"  # MPC notifications only (§1.8)


class Family(enum.StrEnum):
    """Which status table a notification's `status` belongs to."""

    WAAS_V2 = "waas_v2"
    MPC = "mpc"


# Status tables (§1.8, §2A). Codes not listed are kept as numbers and named "unknown": ChainUp has
# added codes before (KYT states), so a new one must not make us refuse a notification.
_STATUS_NAMES: Mapping[tuple[Family, Side], Mapping[int, str]] = {
    (Family.WAAS_V2, Side.DEPOSIT): {
        0: "pending",
        1: "success",
        2: "failed",
        4: "pending_kyt",
        5: "manual_review_kyt_risk",
        6: "manual_review_kyt_circuit_breaker",
    },
    (Family.WAAS_V2, Side.WITHDRAW): {
        0: "risk_review",
        1: "paying",
        2: "audit_rejected",
        4: "failed",
        5: "success",
        6: "cancelled",
        7: "pending_kyt",
        8: "manual_review_kyt_risk",
    },
    (Family.MPC, Side.DEPOSIT): {1000: "unconfirmed", 1100: "block_confirmed", 2000: "credited", 3000: "abnormal"},
    (Family.MPC, Side.WITHDRAW): {
        1000: "awaiting_approval",
        1100: "approved_awaiting_signature",
        1200: "paying",
        2000: "completed",
        2100: "not_approved",
        2200: "rejected",
        2300: "discarded",
        2400: "failed",
    },
}


@dataclass(frozen=True, slots=True)
class EncryptedForm:
    """The two form fields, before decryption."""

    app_id: str
    data: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A deposit, withdrawal or Web3 notification, typed; optional fields are None when absent."""

    side: Side
    family: Family
    id: str
    status: int
    symbol: str | None  # required for deposits and withdrawals; [I] Web3 notifications may omit it
    amount: Decimal | None
    request_id: str | None = None
    uid: str | None = None
    sub_wallet_id: str | None = None
    address_from: str | None = None
    address_to: str | None = None
    memo: str | None = None
    txid: str | None = None
    confirmations: int | None = None
    notify_time: str | None = None
    fee_symbol: str | None = None
    real_fee: Decimal | None = None
    withdraw_fee: Decimal | None = None
    base_symbol: str | None = None
    contract_address: str | None = None
    main_chain_symbol: str | None = None
    interactive_contract: str | None = None
    input_data: str | None = None
    trans_type: int | None = None  # web3: 0 approve, 1 transfer

    @property
    def status_name(self) -> str:
        side = Side.WITHDRAW if self.side is Side.WEB3 else self.side  # web3 uses the withdraw codes
        return _STATUS_NAMES.get((self.family, side), {}).get(self.status, "unknown")


@dataclass(frozen=True, slots=True)
class WithdrawConfirmation:
    """The second-confirmation question for a withdrawal (or a merchant-to-merchant transfer)."""

    request_id: str
    check_sum: str
    time: int | str  # echoed back exactly as received
    symbol: str
    amount: Decimal
    to_address: str | None  # withdrawals
    to_app_id: str | None  # transfers between merchants (`to`)
    from_uid: str | None = None
    remark: str | None = None


# -- transport -------------------------------------------------------------------------------


def parse_form(form: Mapping[str, object]) -> EncryptedForm:
    """The `app_id` and `data` form fields; values must be single strings."""
    app_id, data = form.get("app_id"), form.get("data")
    if not isinstance(app_id, str) or not app_id.strip() or len(app_id) > fields.MAX_TEXT:
        raise InvalidInput("app_id", "missing or not a short string")
    if not isinstance(data, str) or not data.strip():
        raise InvalidInput("data", "missing or empty")
    return EncryptedForm(app_id=app_id.strip(), data=data.strip())


def decrypt(data: str, public_key: rsablocks.RsaPublic) -> object:
    """Base64-decode (either alphabet, padding optional), open the type-1 blocks with ChainUp's
    public key and decode the JSON inside, numbers kept exact. Raises only `InvalidInput`."""
    plaintext = rsablocks.public_decrypt(public_key, rsablocks.b64decode(data), field="data")
    return fields.decode_json(plaintext, field="data")


def encrypt(payload: Mapping[str, object], private_key: rsablocks.RsaPrivate) -> str:
    """Encrypt a JSON object the way ChainUp's helpers do: compact JSON, 234-byte chunks,
    type-1 blocks with the private key, URL-safe Base64 with the padding stripped."""
    plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return rsablocks.b64encode(
        rsablocks.private_encrypt(private_key, plaintext, chunk_size=SEND_CHUNK), urlsafe=True, padded=False
    )


# -- notifications ---------------------------------------------------------------------------


def parse_notification(data: object) -> Notification:
    """Type a decrypted notification. Ids and codes arrive as numbers or digit strings depending on
    the SDK generation, amounts as strings or numbers; all are accepted and normalised."""
    if not isinstance(data, Mapping):
        raise InvalidInput("data", "expected a JSON object")
    side = _side(data.get("side"))
    status = fields.uint(data, "status")
    # MPC codes are four digits (1000...3000), WaaS V2 codes single digits; no field says which.
    family = Family.MPC if status >= 1000 or side is Side.WEB3 else Family.WAAS_V2
    return Notification(
        side=side,
        family=family,
        id=str(fields.uint(data, "id")),
        status=status,
        symbol=_symbol(data, required=side is not Side.WEB3),
        amount=fields.opt_amount(data, "amount") if side is Side.WEB3 else fields.amount(data.get("amount"), "amount"),
        request_id=_opt_text(data, "request_id"),
        uid=_opt_ident(data, "uid"),
        sub_wallet_id=_opt_ident(data, "sub_wallet_id"),
        address_from=_opt_text(data, "address_from"),
        address_to=_opt_text(data, "address_to"),
        memo=_opt_text(data, "memo"),
        txid=_opt_text(data, "txid"),
        confirmations=fields.opt_uint(data, "confirmations"),
        notify_time=_opt_text(data, "notify_time"),
        fee_symbol=_opt_text(data, "fee_symbol"),
        real_fee=fields.opt_amount(data, "real_fee"),
        withdraw_fee=fields.opt_amount(data, "withdraw_fee"),
        base_symbol=_opt_text(data, "base_symbol"),
        contract_address=_opt_text(data, "contract_address"),
        main_chain_symbol=_opt_text(data, "main_chain_symbol"),
        interactive_contract=_opt_text(data, "interactive_contract"),
        input_data=_opt_text(data, "input_data", limit=_MAX_HEX),
        trans_type=fields.opt_uint(data, "trans_type"),
    )


def idempotency_key(notification: Notification) -> str:
    """(side, id, status): ChainUp resends the same state up to five times; a new state is a new event."""
    return f"{notification.side.value}:{notification.id}:{notification.status}"


# -- withdrawal second confirmation ----------------------------------------------------------


def parse_withdraw_confirmation(data: object) -> WithdrawConfirmation:
    """Type a decrypted second-confirmation request (§2A): a withdrawal has `to_address`, a
    merchant-to-merchant transfer `to`; exactly one of them must be present."""
    if not isinstance(data, Mapping):
        raise InvalidInput("data", "expected a JSON object")
    to_address, to_app_id = _opt_text(data, "to_address"), _opt_text(data, "to")
    if (to_address is None) == (to_app_id is None):
        raise InvalidInput("to_address", "exactly one of to_address (withdrawal) / to (transfer) is required")
    return WithdrawConfirmation(
        request_id=_text(data, "request_id"),
        check_sum=_text(data, "check_sum"),
        time=_time(data.get("time")),
        symbol=normalize_symbol(_text(data, "symbol")),
        amount=fields.amount(data.get("amount"), "amount"),
        to_address=to_address,
        to_app_id=to_app_id,
        from_uid=_opt_ident(data, "from_uid"),
        remark=_opt_text(data, "remark"),
    )


def confirmation_request(confirmation: WithdrawConfirmation) -> DecisionRequest:
    """The policy question; `order_ref` is the merchant's own request_id from /billing/withdraw."""
    destination = confirmation.to_address or f"merchant:{confirmation.to_app_id}"
    # ChainUp's coin symbol names chain and token at once (`USDTERC20`: ETH, USDT), split as the
    # co-signer's is. The confirmation carries nothing else about the coin (§2A, both doc
    # generations): `base_symbol` and `contract_address` come only in MPC notifications and the
    # coin list, so an unknown symbol stays whole (chain and asset), never refused for that alone.
    chain, asset = chain_and_asset(confirmation.symbol)
    return DecisionRequest(
        provider=PROVIDER,
        operation=Operation.WITHDRAW,
        request_id=confirmation.request_id,
        wallet=confirmation.from_uid,
        transfers=(Transfer(chain, asset, confirmation.amount, normalize_address(destination)),),
        order_ref=confirmation.request_id,
        attributes=(("kind", "withdraw" if confirmation.to_address else "transfer"),),
    )


def confirmation_fingerprint(confirmation: WithdrawConfirmation) -> str:
    """SHA-256 over what is being confirmed. `check_sum` and `time` are left out: [U] whether a
    re-asked confirmation carries new ones; the verdict is memoised, the answer echoes each.
    The symbol goes in as ChainUp sent it, not as the chain/asset split: answers remembered before
    the split keep their fingerprints, so a retry still gets its verdict, not a replay refusal."""
    c = confirmation
    fields_ = [c.request_id, c.symbol, format(c.amount.normalize(), "f"), c.to_address, c.to_app_id, c.from_uid]
    return hashlib.sha256(json.dumps(fields_, separators=(",", ":")).encode()).hexdigest()


def confirmation_answer(confirmation: WithdrawConfirmation, private_key: rsablocks.RsaPrivate) -> bytes:
    """The approving answer: JSON `{"data": <encrypted {"check_sum", "time"}>}`.

    [I] Sources disagree (§2A): the 2022 docs and the SDK's `verifyResponse` encrypt the JSON with
    the merchant's private key inside a `data` wrapper; the 2023 markdown shows it bare. We follow
    the SDK. [U] Which of our keys ChainUp opens it with is not stated: the SDK uses the same
    private key as for API requests, so `private_key` is the merchant's API key pair.
    """
    inner = {"check_sum": confirmation.check_sum, "time": confirmation.time}
    return json.dumps({"data": encrypt(inner, private_key)}, separators=(",", ":")).encode()


# -- typed field readers ---------------------------------------------------------------------


def _side(value: object) -> Side:
    try:
        return Side(value if isinstance(value, str) else "")
    except ValueError:
        raise InvalidInput("side", f"unknown value {str(value)[:40]!r}") from None


def _text(data: fields.Fields, name: str) -> str:
    # Ids and timestamps arrive as numbers from some SDK generations; they are still text to us.
    return fields.text(data, name, numbers=True)


def _opt_text(data: fields.Fields, name: str, *, limit: int = fields.MAX_TEXT) -> str | None:
    return fields.opt_text(data, name, limit=limit, numbers=True)


def _symbol(data: fields.Fields, *, required: bool) -> str | None:
    symbol = _text(data, "symbol") if required else _opt_text(data, "symbol")
    return None if symbol is None else normalize_symbol(symbol)


def _opt_ident(data: fields.Fields, name: str) -> str | None:
    value = fields.opt_uint(data, name)
    return None if value is None else str(value)


def _time(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip() and len(value) <= 64:
        return value
    raise InvalidInput("time", "expected a timestamp")
