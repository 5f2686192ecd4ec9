"""Typed `request_detail` and `extra_info` of Cobo TSS Node callbacks, and the field readers.

Field names follow the cobo-waas2 SDK models (protocols/cobo.md A.3). Every value is checked
for type and bounded in size; optional descriptive fields default to empty rather than fail,
because the node's JSON is generated from models that gain fields between releases.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.errors import InvalidInput

_MAX_TEXT = 4096
_MAX_RAW = 512 * 1024  # unsigned raw transactions and key-share-sign messages
_MAX_ITEMS = 1024


@dataclass(frozen=True, slots=True)
class KeyGenDetail:
    threshold: int
    node_ids: tuple[str, ...]
    curve: int  # 0 secp256k1, 2 ed25519
    task_id: str
    biz_task_id: str  # the TSS request id


@dataclass(frozen=True, slots=True)
class KeySignDetail:
    group_id: str
    root_pub_key: str
    used_node_ids: tuple[str, ...]
    bip32_path_list: tuple[str, ...]
    msg_hash_list: tuple[str, ...]
    tweak_list: tuple[str, ...]
    signature_type: int  # 1 ECDSA, 2 EdDSA, 3 Schnorr
    tss_protocol: int  # 1 GG18, 2 Lindell, 3 EddsaTSS
    task_id: str
    biz_task_id: str  # the transaction id


@dataclass(frozen=True, slots=True)
class ReshareDetail:
    old_group_id: str
    root_pub_key: str
    curve: int
    used_node_ids: tuple[str, ...]
    old_threshold: int
    new_threshold: int
    new_node_ids: tuple[str, ...]
    task_id: str
    biz_task_id: str


@dataclass(frozen=True, slots=True)
class KeyShareSignItem:
    group_id: str
    message: str


@dataclass(frozen=True, slots=True)
class KeyShareSignDetail:
    node_id: str
    details: tuple[KeyShareSignItem, ...]
    task_id: str
    biz_task_id: str


@dataclass(frozen=True, slots=True)
class Output:
    """One destination of a transfer as Cobo describes it (descriptive, not authoritative)."""

    address: str
    amount: Decimal | None


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """The parts of the WaaS `Transaction` in `extra_info.transaction` that a decision reads."""

    transaction_id: str
    request_id: str  # the API request id the merchant gave when creating the transaction
    wallet_id: str
    type: str  # Withdrawal, ContractCall, MessageSign, ...
    chain_id: str
    token_id: str
    destination_type: str  # Address, EVM_Contract, EVM_EIP_191_Signature, ...
    outputs: tuple[Output, ...]
    calldata: str
    unsigned_raw_tx: str
    message: str = ""  # base64 of an EIP-191 message to sign (MessageSign transactions)


@dataclass(frozen=True, slots=True)
class ExtraInfo:
    """The decision-relevant subset of `extra_info`, common to all request types."""

    org_id: str = ""
    project_id: str = ""
    vault_id: str = ""
    wallet_id: str = ""
    tss_request_id: str = ""
    source_addresses: tuple[str, ...] = ()
    transaction: TransactionInfo | None = None


def parse_keygen_detail(d: dict[str, Any]) -> KeyGenDetail:
    return KeyGenDetail(
        threshold=integer(d, "threshold", "request_detail"),
        node_ids=texts(d, "node_ids", "request_detail", required=True),
        curve=integer(d, "curve", "request_detail"),
        task_id=text(d, "task_id", "request_detail"),
        biz_task_id=text(d, "biz_task_id", "request_detail"),
    )


def parse_keysign_detail(d: dict[str, Any]) -> KeySignDetail:
    hashes = texts(d, "msg_hash_list", "request_detail", required=True)
    if not hashes:
        raise InvalidInput("request_detail.msg_hash_list", "empty")
    return KeySignDetail(
        group_id=text(d, "group_id", "request_detail"),
        root_pub_key=text(d, "root_pub_key", "request_detail"),
        used_node_ids=texts(d, "used_node_ids", "request_detail"),
        bip32_path_list=texts(d, "bip32_path_list", "request_detail"),
        msg_hash_list=hashes,
        tweak_list=texts(d, "tweak_list", "request_detail"),
        signature_type=integer(d, "signature_type", "request_detail"),
        tss_protocol=integer(d, "tss_protocol", "request_detail"),
        task_id=text(d, "task_id", "request_detail"),
        biz_task_id=text(d, "biz_task_id", "request_detail"),
    )


def parse_reshare_detail(d: dict[str, Any]) -> ReshareDetail:
    return ReshareDetail(
        old_group_id=text(d, "old_group_id", "request_detail"),
        root_pub_key=text(d, "root_pub_key", "request_detail"),
        curve=integer(d, "curve", "request_detail"),
        used_node_ids=texts(d, "used_node_ids", "request_detail"),
        old_threshold=integer(d, "old_threshold", "request_detail", required=False),
        new_threshold=integer(d, "new_threshold", "request_detail"),
        new_node_ids=texts(d, "new_node_ids", "request_detail", required=True),
        task_id=text(d, "task_id", "request_detail"),
        biz_task_id=text(d, "biz_task_id", "request_detail"),
    )


def parse_keysharesign_detail(d: dict[str, Any]) -> KeyShareSignDetail:
    items = _items(d, "details", "request_detail", required=True)
    return KeyShareSignDetail(
        node_id=text(d, "node_id", "request_detail"),
        details=tuple(
            KeyShareSignItem(
                text(i, "group_id", "request_detail.details"),
                text(i, "message", "request_detail.details", limit=_MAX_RAW),
            )
            for i in items
        ),
        task_id=text(d, "task_id", "request_detail"),
        biz_task_id=text(d, "biz_task_id", "request_detail"),
    )


def parse_extra_info(d: dict[str, Any]) -> ExtraInfo:
    tss_request = _obj(d, "tss_request", "extra_info")
    transaction = _obj(d, "transaction", "extra_info")
    return ExtraInfo(
        org_id=text(_obj(d, "org", "extra_info"), "org_id", "extra_info.org"),
        project_id=text(_obj(d, "project", "extra_info"), "project_id", "extra_info.project"),
        vault_id=text(_obj(d, "vault", "extra_info"), "vault_id", "extra_info.vault"),
        wallet_id=text(_obj(d, "wallet", "extra_info"), "wallet_id", "extra_info.wallet"),
        tss_request_id=text(tss_request, "tss_request_id", "extra_info.tss_request"),
        source_addresses=tuple(
            text(a, "address", "extra_info.source_addresses") for a in _items(d, "source_addresses", "extra_info")
        ),
        transaction=_transaction(transaction) if transaction else None,
    )


def _transaction(t: dict[str, Any]) -> TransactionInfo:
    path = "extra_info.transaction"
    destination = _obj(t, "destination", path)
    raw_info = _obj(t, "raw_tx_info", path)
    return TransactionInfo(
        transaction_id=text(t, "transaction_id", path),
        request_id=text(t, "request_id", path),
        wallet_id=text(t, "wallet_id", path),
        type=text(t, "type", path),
        chain_id=text(t, "chain_id", path),
        token_id=text(t, "token_id", path),
        destination_type=text(destination, "destination_type", path + ".destination"),
        outputs=_outputs(destination),
        calldata=text(destination, "calldata", path + ".destination", limit=_MAX_RAW),
        unsigned_raw_tx=text(raw_info, "unsigned_raw_tx", path + ".raw_tx_info", limit=_MAX_RAW),
        message=text(destination, "message", path + ".destination", limit=_MAX_RAW),
    )


def _outputs(destination: dict[str, Any]) -> tuple[Output, ...]:
    # Address transfers put one output in `account_output` or several in `utxo_outputs`;
    # contract calls put `address` and `value` at the top level.
    path = "extra_info.transaction.destination"
    account = _obj(destination, "account_output", path)
    found = [account] if account else list(_items(destination, "utxo_outputs", path))
    if not found and destination.get("address"):
        value = destination.get("value", destination.get("amount"))
        found = [{"address": destination["address"], "amount": value}]
    return tuple(Output(text(o, "address", path), amount(o, "amount", path)) for o in found)


# -- field readers ---------------------------------------------------------------------------


def text(d: dict[str, Any], name: str, path: str, *, required: bool = False, limit: int = _MAX_TEXT) -> str:
    """A string field (missing or null reads as "" unless `required`), bounded to `limit` chars."""
    value = d.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{path}.{name}", "missing or not a string")
    if len(value) > limit:
        raise InvalidInput(f"{path}.{name}", f"longer than {limit} characters")
    return value


def texts(d: dict[str, Any], name: str, path: str, *, required: bool = False) -> tuple[str, ...]:
    """A list of strings (missing or null reads as () unless `required`)."""
    value = d.get(name)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise InvalidInput(f"{path}.{name}", f"missing or not a list of at most {_MAX_ITEMS} strings")
    if not all(isinstance(v, str) and len(v) <= _MAX_TEXT for v in value):
        raise InvalidInput(f"{path}.{name}", "an item is not a bounded string")
    return tuple(value)


def integer(d: dict[str, Any], name: str, path: str, *, required: bool = True) -> int:
    """An integer field in a sane range; bool is not an integer here."""
    value = d.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31:
        raise InvalidInput(f"{path}.{name}", "missing or not a 32-bit integer")
    return value


class InexactAmount(InvalidInput):
    """An amount arrived as a binary float: the document must be decoded again, exactly."""


def amount(d: dict[str, Any], name: str, path: str) -> Decimal | None:
    """A decimal amount given as a string or number; missing or empty reads as None (unknown)."""
    value = d.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, float):
        raise InexactAmount(f"{path}.{name}", "a JSON number decoded as a float")
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidInput(f"{path}.{name}", "not a decimal amount")
    if len(str(value)) > 80:
        raise InvalidInput(f"{path}.{name}", "amount too long")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"{path}.{name}", "not a decimal amount") from None
    if not result.is_finite() or result < 0:
        raise InvalidInput(f"{path}.{name}", "not a finite non-negative amount")
    return result


def _obj(d: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    value = d.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}.{name}", "not an object")
    return value


def _items(d: dict[str, Any], name: str, path: str, *, required: bool = False) -> tuple[dict[str, Any], ...]:
    value = d.get(name)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or len(value) > _MAX_ITEMS or not all(isinstance(i, dict) for i in value):
        raise InvalidInput(f"{path}.{name}", f"missing or not a list of at most {_MAX_ITEMS} objects")
    return tuple(value)
