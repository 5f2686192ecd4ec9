"""One notification schema for every provider: what a subscriber receives about an event.

Providers describe the same facts under different names (`txid`, `tx_hash`, `transaction_id`;
`currency`, `symbol`, `coin`). The notification lifts the well-known ones into stable places
(`ids`, `amounts` as strings, `assets`, `status`) and refers to the stored event for the rest:
`data.event_id` is the `events.id` row holding the raw body and the full parsed payload.

    {"type": "wyre.transaction.confirmed", "timestamp": "2026-01-02T03:04:05.678Z",
     "data": {"event_id": "42", "provider": "wyre", "kind": "transaction.confirmed",
              "idempotency_key": "...", "request_id": "...", "status": "CONFIRMED",
              "ids": {"id": "TR_..."}, "amounts": {"amount": "0.01653538"},
              "assets": {"currency": "BTC"}, "decision": null}}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from shared.jobs import EventEnvelope, JsonObject

ID_KEYS = (
    "id",
    "txid",
    "tx_hash",
    "txHash",
    "transaction_id",
    "transactionId",
    "request_id",
    "requestId",
    "tss_request_id",
    "order_id",
    "orderId",
    "wallet_uuid",
    "wallet_id",
    "walletId",
    "vault_id",
    "address",
    "from_address",
    "to_address",
    "toAddress",
    "fromAddress",
    "source",
    "dest",
    "trackingId",
    "callBackId",
    "cobo_id",
    "uid",
)
AMOUNT_KEYS = ("amount", "fee", "value", "fee_amount", "amount_str", "real_amount", "destAmount", "sourceAmount")
ASSET_KEYS = ("currency", "symbol", "coin", "token_id", "asset", "chain", "chain_id", "mainCoin", "network")
STATUS_KEYS = ("status", "state", "tss_status")
# Where providers nest the interesting object (Cobo `data`, UCW `result`, TSS `request`).
NESTED_KEYS = ("data", "result", "request", "transaction")
MAX_VALUE_CHARS = 256


def event_type(provider: str, kind: str) -> str:
    """The `type` subscribers filter on: `<provider>.<kind>`."""
    return f"{provider}.{kind}"


def notification_body(event: EventEnvelope) -> JsonObject:
    """The notification for a stored event, without `data.event_id` (the database adds it)."""
    payload = payload_of(event)
    return {
        "type": event_type(event.provider, event.kind),
        "timestamp": dt.datetime.fromtimestamp(event.received_at, dt.UTC).isoformat(timespec="milliseconds"),
        "data": {
            "provider": event.provider,
            "kind": event.kind,
            "idempotency_key": event.idempotency_key,
            "request_id": event.request_id,
            "status": _first_text(payload, STATUS_KEYS) or event.status,
            "ids": pick(payload, ID_KEYS),
            "amounts": pick(payload, AMOUNT_KEYS, amounts=True),
            "assets": pick(payload, ASSET_KEYS),
            "decision": event.decision.get("action") if event.decision else None,
        },
    }


def payload_of(event: EventEnvelope) -> Mapping[str, Any]:
    """The event's JSON payload (the raw body when the envelope carries none); {} if not an object."""
    if event.payload is not None:
        return event.payload
    try:
        value = orjson.loads(event.raw_body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _scopes(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [payload, *(v for k in NESTED_KEYS if isinstance(v := payload.get(k), dict))]


def pick(payload: Mapping[str, Any], names: tuple[str, ...], *, amounts: bool = False) -> dict[str, str]:
    """The first usable value of each name, top level first, then the usual nested objects."""
    found: dict[str, str] = {}
    for scope in _scopes(payload):
        for name in names:
            if name not in found and (text := _text(scope.get(name), amounts=amounts)) is not None:
                found[name] = text
    return found


def _first_text(payload: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    return next(iter(pick(payload, names).values()), None)


def _text(value: object, *, amounts: bool) -> str | None:
    # Amounts travel as strings so no receiver parses 0.1 into a binary float; bools are not numbers.
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f") if amounts else repr(value)
    if isinstance(value, int | str | Decimal):
        text = str(value)
        return text if len(text) <= MAX_VALUE_CHARS else None
    return None
