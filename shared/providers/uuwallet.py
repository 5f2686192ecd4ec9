"""UU Wallet WaaS merchant callbacks: RSA-1024 ciphertext in, JSON `{errCode, message, data}` out.

The WaaS "encrypts with its private key" (PKCS#1 v1.5 type-1 blocks of 128 bytes, standard
Base64) and posts the bare Base64 as the request body (protocols/chainup_wyre.md §2B). Opening it
with the WaaS public key is the authentication beside `X-API-KEY`, so `decrypt_body` runs on the
exact raw bytes before anything is parsed. Answers carry `data` encrypted *to* the WaaS public key
(type-2 blocks, 117-byte chunks). The sender retries until it reads `errCode` 0, so a wrong
answer either loses an event or loops forever: idempotency keys follow the seed to the letter.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import unquote_to_bytes

from shared import rsablocks
from shared.errors import InvalidInput, Unauthorized
from shared.providers import jsonfields as fields

PROVIDER = "uuwallet"
RISK_MAX = 100

_MAX_TEXT = 256  # ids, addresses, hashes, symbols: far below this; bounds what we store and log
_FORM_FIELD = b"data="


class CallbackType(enum.IntEnum):
    """The `type` enum of every UU Wallet callback."""

    UNKNOWN = 0  # "do not handle"
    DEPOSITED = 1
    REQUEST_WITHDRAW = 2  # withdrawal second confirmation, on its own URL
    WITHDRAW = 3  # withdrawal result
    ADDRESS = 4  # the user's address changed
    INVALID_ADDRESS = 5  # withdrawal terminated: unfreeze the funds
    NOT_ENOUGH_MONEY = 6  # hot wallet short: temporary, the WaaS retries
    NOT_ENOUGH_HOT_MONEY = 7  # not enough gas: temporary, the WaaS retries


class ErrCode(enum.IntEnum):
    """Our `errCode` values. [U] The WaaS only distinguishes 0 from non-zero."""

    OK = 0
    INVALID = 4000  # undecryptable, not JSON, or fields we cannot accept: the WaaS retries
    REJECTED = 4030  # second confirmation refused (unknown, expired, confirmed, or policy)
    UNAVAILABLE = 5030  # could not make it durable: retry later


@dataclass(frozen=True, slots=True)
class Header:
    """The fields every callback carries."""

    type: CallbackType
    request_uuid: str  # new on every retry: never part of an idempotency key
    tenant_user_id: str
    tracking_id: str | None
    call_back_id: str | None
    business: int


@dataclass(frozen=True, slots=True)
class Ignored:
    """Type 0, NOTIFY_UNKNOWN: nothing to process."""

    header: Header


@dataclass(frozen=True, slots=True)
class OnChain:
    """The on-chain transfer a deposit or a withdrawal result reports."""

    tx_id: str
    chain_name: str
    symbol: str
    amount: Decimal
    to_address: str
    from_address: str | None
    new_address: str | None  # "replaces toAddress" in the docs; kept as information


@dataclass(frozen=True, slots=True)
class Deposit:
    """Type 1: a deposit to a user's WaaS address."""

    header: Header
    transfer: OnChain
    tx_index: int | None
    risk_level_from: int | None  # 0..100
    risk_level_to: int | None  # 0..100

    @property
    def risk_level(self) -> int | None:
        """The higher of the two address risk scores, None when neither was sent."""
        levels = [x for x in (self.risk_level_from, self.risk_level_to) if x is not None]
        return max(levels) if levels else None


@dataclass(frozen=True, slots=True)
class WithdrawResult:
    """Type 3: a withdrawal was executed on chain."""

    header: Header
    transfer: OnChain
    tx_timestamp: int | None  # energy rental only (symbol "ENERGY")


@dataclass(frozen=True, slots=True)
class AddressChanged:
    """Type 4: the user's deposit address changed to `new_address`."""

    header: Header
    new_address: str
    chain_name: str | None
    symbol: str | None


@dataclass(frozen=True, slots=True)
class WithdrawIssue:
    """Types 5 (terminated: unfreeze), 6 (hot wallet short) and 7 (no gas): about `call_back_id`."""

    header: Header
    to_address: str | None


@dataclass(frozen=True, slots=True)
class WithdrawRequest:
    """Type 2: the WaaS asks for the real details of the withdrawal `call_back_id`."""

    header: Header
    call_back_id: str  # the merchant's id from withdrawRequest; the same as header.call_back_id


Callback = Ignored | Deposit | WithdrawResult | AddressChanged | WithdrawIssue | WithdrawRequest


# -- transport -------------------------------------------------------------------------------


def check_api_key(presented: str | None, keys: Sequence[str]) -> None:
    """Raise `Unauthorized` unless `presented` equals one of `keys` (several during a rotation).

    Every key is compared, in constant time, whatever matched first.
    """
    if not presented:
        raise Unauthorized("missing X-API-KEY")
    given = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    if not matched:
        raise Unauthorized("wrong X-API-KEY")


def decrypt_body(raw: bytes, public_key: rsablocks.RsaPublic) -> object:
    """Open a callback body: bare Base64 (the documented form) or a `data=` form field.

    The WaaS posts the Base64 itself as the body, labelled form-urlencoded (the docs warn that
    `getParameter("data")` returns null). [I] Some deployments send `data=<b64>` as for
    merchant→WaaS calls, so that is accepted too. Percent-escapes are undone but `+` is kept: it is
    a Base64 character here, never an encoded space. Raises only `InvalidInput`.
    """
    text = raw.strip()
    if text.startswith(_FORM_FIELD) or b"&" + _FORM_FIELD in text:
        text = _form_field(text)
    if b"%" in text:
        text = unquote_to_bytes(text)
    plaintext = rsablocks.public_decrypt(public_key, rsablocks.b64decode(text, field="body"), field="body")
    return fields.decode_json(plaintext)


def encrypt_data(payload: Mapping[str, object], public_key: rsablocks.RsaPublic) -> str:
    """Compact JSON, 117-byte chunks, type-2 blocks to the WaaS public key, standard Base64."""
    plaintext = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return rsablocks.b64encode(rsablocks.public_encrypt(public_key, plaintext))


def _form_field(body: bytes) -> bytes:
    for part in body.split(b"&"):
        if part.startswith(_FORM_FIELD):
            return part[len(_FORM_FIELD) :]
    raise InvalidInput("body", "no data field")  # pragma: no cover - the caller checked the prefix


# -- callbacks -------------------------------------------------------------------------------


def parse_callback(data: object) -> Callback:
    """Type a decrypted callback; every type's fields as the WaaS documents them (§2B).

    Ids arrive as strings in the examples but are accepted as integers too; amounts as decimal
    strings or numbers (never floats: decode with `decrypt_body`).
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("data", "expected a JSON object")
    header = _header(data)
    match header.type:
        case CallbackType.UNKNOWN:
            return Ignored(header)
        case CallbackType.DEPOSITED:
            return _deposit(header, data)
        case CallbackType.WITHDRAW:
            return WithdrawResult(header, _on_chain(data), tx_timestamp=fields.opt_uint(data, "txTimeStamp"))
        case CallbackType.ADDRESS:
            return AddressChanged(
                header,
                new_address=_text(data, "newAddress"),
                chain_name=_opt_text(data, "chainName"),
                symbol=_opt_text(data, "symbol"),
            )
        case CallbackType.REQUEST_WITHDRAW:
            return WithdrawRequest(header, call_back_id=_require_call_back_id(header))
        case _:
            _require_call_back_id(header)
            return WithdrawIssue(header, to_address=_opt_text(data, "toAddress"))


def _header(data: fields.Fields) -> Header:
    type_value = fields.uint(data, "type")
    try:
        type_ = CallbackType(type_value)
    except ValueError:
        # Refused, not acked: the WaaS keeps retrying, so a type added later waits (counted, in
        # the logs) until the codec knows it, instead of being acknowledged and lost.
        raise InvalidInput("type", f"unknown callback type {type_value}") from None
    # Type 0 is "do not handle": missing ids there must not turn it into an endless retry.
    text = _opt_text if type_ is CallbackType.UNKNOWN else _text
    return Header(
        type=type_,
        request_uuid=text(data, "requestUUID") or "",
        tenant_user_id=text(data, "tenantUserId") or "",
        tracking_id=_opt_text(data, "trackingId"),
        call_back_id=_opt_text(data, "callBackId"),
        business=fields.opt_uint(data, "business") or 0,
    )


def _deposit(header: Header, data: fields.Fields) -> Deposit:
    return Deposit(
        header,
        _on_chain(data),
        tx_index=_opt_index(data, "txIndex"),
        risk_level_from=_risk(data, "riskLevelFrom"),
        risk_level_to=_risk(data, "riskLevelTo"),
    )


def _on_chain(data: fields.Fields) -> OnChain:
    return OnChain(
        tx_id=_text(data, "txId"),
        chain_name=_text(data, "chainName"),
        symbol=_text(data, "symbol"),
        amount=fields.amount(data.get("amount"), "amount"),
        to_address=_text(data, "toAddress"),
        from_address=_opt_text(data, "fromAddress"),
        new_address=_opt_text(data, "newAddress"),
    )


def _require_call_back_id(header: Header) -> str:
    if header.call_back_id is None:
        raise InvalidInput("callBackId", f"required for type {header.type.value}")
    return header.call_back_id


def to_payload(callback: Callback) -> dict[str, object]:
    """The stored form: the fields as validated, under the WaaS's documented names (so downstream
    readers and notifications see `toAddress`, `amount`, ...), amounts as exact decimal strings,
    absent fields left out."""
    header = callback.header
    out: dict[str, object | None] = {
        "type": header.type.value,
        "requestUUID": header.request_uuid,
        "tenantUserId": header.tenant_user_id,
        "trackingId": header.tracking_id,
        "callBackId": header.call_back_id,
        "business": header.business,
    }
    match callback:
        case Deposit():
            out |= _on_chain_payload(callback.transfer)
            out |= {"txIndex": callback.tx_index, "riskLevelFrom": callback.risk_level_from}
            out |= {"riskLevelTo": callback.risk_level_to}
        case WithdrawResult():
            out |= _on_chain_payload(callback.transfer) | {"txTimeStamp": callback.tx_timestamp}
        case AddressChanged():
            out |= {"newAddress": callback.new_address, "chainName": callback.chain_name, "symbol": callback.symbol}
        case WithdrawIssue():
            out |= {"toAddress": callback.to_address}
    return {name: value for name, value in out.items() if value is not None}


def _on_chain_payload(moved: OnChain) -> dict[str, object | None]:
    return {
        "txId": moved.tx_id,
        "chainName": moved.chain_name,
        "symbol": moved.symbol,
        "amount": format(moved.amount, "f"),
        "fromAddress": moved.from_address,
        "toAddress": moved.to_address,
        "newAddress": moved.new_address,
    }


# -- idempotency -----------------------------------------------------------------------------


def idempotency_key(callback: Callback) -> str:
    """The seed's keys, exactly: never `requestUUID`, which changes on every retry.

    - deposit: a hash of (txId, chainName, symbol, toAddress). One transaction can credit several
      tokens or addresses (wrapped contracts), and each of those is its own deposit.
    - withdrawal result: txId, which the WaaS controls and keeps unique.
    - everything else: (type, trackingId, callBackId).
    """
    match callback:
        case Deposit():
            moved = callback.transfer
            parts = [moved.tx_id, moved.chain_name, moved.symbol, moved.to_address]
            return "deposit:" + hashlib.sha256(_canonical(parts)).hexdigest()
        case WithdrawResult():
            return f"withdraw:{callback.transfer.tx_id}"
        case _:
            header = callback.header
            return "other:" + _canonical([header.type.value, header.tracking_id, header.call_back_id]).decode()


def _canonical(parts: Sequence[object]) -> bytes:
    # JSON of a list: unambiguous whatever the parts contain (no separator can be forged).
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# -- answers ---------------------------------------------------------------------------------


def echo(header: Header) -> dict[str, object]:
    """The business fields every answer's `data` echoes so the WaaS can match it to its request."""
    return {
        "requestUUID": header.request_uuid,
        "tenantUserId": header.tenant_user_id,
        "type": header.type.value,
        "trackingId": header.tracking_id,
        "callBackId": header.call_back_id,
    }


def answer(
    public_key: rsablocks.RsaPublic,
    code: ErrCode,
    *,
    message: str = "",
    data: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The response body `{errCode, message, data}`; `data` is encrypted, or "" when there is none.

    [U] The examples also carry `apiKey`; nothing says it is required, so we do not send a secret
    back. A failure must carry a message (the docs require one for non-zero codes).
    """
    if code is not ErrCode.OK and not message:
        message = code.name.lower()
    return {
        "errCode": code.value,
        "message": message,
        "data": encrypt_data(data, public_key) if data is not None else "",
    }


# -- typed field readers ---------------------------------------------------------------------


def _opt_text(data: fields.Fields, name: str) -> str | None:
    # Ids such as tenantUserId "2049" are documented as strings but may come as numbers.
    return fields.opt_text(data, name, limit=_MAX_TEXT, numbers=True)


def _text(data: fields.Fields, name: str) -> str:
    return fields.text(data, name, limit=_MAX_TEXT, numbers=True)


def _opt_index(data: fields.Fields, name: str) -> int | None:
    # txIndex is -1 in the documented deposit example, so it is the one signed integer.
    value = data.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and -1 <= value < 2**63:
        return value
    if isinstance(value, str) and value.strip() == "-1":
        return -1
    return fields.opt_uint(data, name)


def _risk(data: fields.Fields, name: str) -> int | None:
    value = fields.opt_uint(data, name)
    if value is not None and value > RISK_MAX:
        raise InvalidInput(name, f"risk level {value} is outside 0..{RISK_MAX}")
    return value
