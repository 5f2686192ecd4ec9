"""Decision requests as data: the shape used by policy examples and recorded-request replays.

`parse_decision_request` reads the JSON form of a `DecisionRequest` (as `request_to_data`
writes it) so that a candidate policy can be run against requests recorded by the audit trail.
"""

from __future__ import annotations

from decimal import Decimal

from shared.errors import PolicyError
from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.model import Action, DecisionRequest, ExpectedOrder, Operation, Transfer
from shared.policy.values import as_decimal, as_int, as_mapping, as_str, as_str_list, check_keys, optional

_REQUEST_KEYS = frozenset(
    {"provider", "operation", "request_id", "wallet", "transfers", "node_ids", "threshold", "curve",
     "signature_type", "protocol", "order_ref", "attributes"}
)  # fmt: skip
_TRANSFER_KEYS = frozenset({"chain", "asset", "amount", "destination", "contract", "unlimited_approval"})
_ORDER_KEYS = frozenset({"chain", "asset", "destination", "amount", "expires_at", "confirmed", "extras"})


def parse_action(value: object, path: str) -> Action:
    """APPROVE or REJECT, in any letter case."""
    text = as_str(value, path).strip().upper()
    if text not in Action.__members__:
        raise PolicyError(path, "expected APPROVE or REJECT")
    return Action[text]


def parse_decision_request(data: object, path: str = "request", *, default_id: str | None = None) -> DecisionRequest:
    """A DecisionRequest from its data form; raises PolicyError naming the bad field."""
    m = as_mapping(data, path)
    check_keys(m, path, allowed=_REQUEST_KEYS, required=frozenset({"provider", "operation"}))
    operation = as_str(m["operation"], f"{path}.operation").strip().lower()
    if operation not in Operation._value2member_map_:
        raise PolicyError(f"{path}.operation", f"unknown operation {operation!r}")
    request_id = optional(m, "request_id", default_id, as_str, path)
    if request_id is None:
        raise PolicyError(f"{path}.request_id", "missing")
    threshold = m.get("threshold")
    return DecisionRequest(
        provider=as_str(m["provider"], f"{path}.provider").strip().lower(),
        operation=Operation(operation),
        request_id=request_id,
        wallet=optional(m, "wallet", None, _nullable_str, path),
        transfers=tuple(_transfer(t, f"{path}.transfers[{i}]") for i, t in enumerate(_list(m, "transfers", path))),
        node_ids=tuple(as_str_list(m.get("node_ids", []), f"{path}.node_ids")),
        threshold=None if threshold is None else as_int(threshold, f"{path}.threshold", low=0, high=10_000),
        curve=optional(m, "curve", None, _nullable_str, path),
        signature_type=optional(m, "signature_type", None, _nullable_str, path),
        protocol=optional(m, "protocol", None, _nullable_str, path),
        order_ref=optional(m, "order_ref", None, _nullable_str, path),
        attributes=_pairs(m.get("attributes"), f"{path}.attributes"),
    )


def parse_example_order(data: object, path: str, request: DecisionRequest) -> ExpectedOrder:
    """The expected order an example's registry holds for the example's request."""
    m = as_mapping(data, path)
    check_keys(m, path, allowed=_ORDER_KEYS, required=frozenset({"chain", "asset", "destination", "amount"}))
    expires_at = optional(m, "expires_at", None, as_decimal, path)
    confirmed = m.get("confirmed", False)
    if not isinstance(confirmed, bool):
        raise PolicyError(f"{path}.confirmed", "expected true or false")
    return ExpectedOrder(
        provider=request.provider,
        order_ref=request.order_ref or request.request_id,
        chain=normalize_symbol(as_str(m["chain"], f"{path}.chain")),
        asset=normalize_symbol(as_str(m["asset"], f"{path}.asset")),
        destination=normalize_address(as_str(m["destination"], f"{path}.destination")),
        amount=as_decimal(m["amount"], f"{path}.amount"),
        expires_at=None if expires_at is None else float(expires_at),
        confirmed=confirmed,
        extras=_pairs(m.get("extras"), f"{path}.extras"),
    )


def request_to_data(request: DecisionRequest) -> dict[str, object]:
    """The JSON-safe form of `request` (amounts as strings), the inverse of parse_decision_request."""
    return {
        "provider": request.provider,
        "operation": request.operation.value,
        "request_id": request.request_id,
        "wallet": request.wallet,
        "transfers": [_transfer_data(t) for t in request.transfers],
        "node_ids": list(request.node_ids),
        "threshold": request.threshold,
        "curve": request.curve,
        "signature_type": request.signature_type,
        "protocol": request.protocol,
        "order_ref": request.order_ref,
        "attributes": dict(request.attributes),
    }


def _transfer_data(t: Transfer) -> dict[str, object]:
    amount = None if t.amount is None else str(t.amount)
    return {"chain": t.chain, "asset": t.asset, "amount": amount, "destination": t.destination,
            "contract": t.contract, "unlimited_approval": t.unlimited_approval}  # fmt: skip


def _list(m: dict[str, object], key: str, path: str) -> list[object]:
    value = m.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(f"{path}.{key}", "expected a list")
    return value


def _transfer(data: object, path: str) -> Transfer:
    m = as_mapping(data, path)
    check_keys(m, path, allowed=_TRANSFER_KEYS, required=frozenset({"chain", "asset"}))
    unlimited = m.get("unlimited_approval", False)
    if not isinstance(unlimited, bool):
        raise PolicyError(f"{path}.unlimited_approval", "expected true or false")
    amount: Decimal | None = None if m.get("amount") is None else as_decimal(m["amount"], f"{path}.amount")
    destination = optional(m, "destination", None, _nullable_str, path)
    contract = optional(m, "contract", None, _nullable_str, path)
    return Transfer(
        chain=normalize_symbol(as_str(m["chain"], f"{path}.chain")),
        asset=normalize_symbol(as_str(m["asset"], f"{path}.asset")),
        amount=amount,
        destination=None if destination is None else normalize_address(destination),
        contract=None if contract is None else normalize_address(contract),
        unlimited_approval=unlimited,
    )


def _nullable_str(value: object, path: str) -> str | None:
    return None if value is None else as_str(value, path)


def _pairs(value: object, path: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    m = as_mapping(value, path)
    pairs: list[tuple[str, str]] = []
    for key, item in m.items():
        if not isinstance(item, str | int | Decimal):  # bool is an int: YAML `true` becomes "true"
            raise PolicyError(f"{path}.{key}", "expected a string, a number or a boolean")
        pairs.append((key, str(item).lower() if isinstance(item, bool) else str(item)))
    return tuple(pairs)
