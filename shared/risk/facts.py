"""What a risk check needs to know about an event, whatever provider sent it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from shared.errors import InvalidInput
from shared.jobs import EventEnvelope
from shared.notify.normalize import payload_of, pick

WALLET_KEYS = ("wallet_uuid", "wallet_id", "walletId", "vault_id", "uid", "dest")
COUNTERPARTY_KEYS = ("from_address", "fromAddress", "to_address", "toAddress", "address", "source")
KYT_KEYS = ("riskLevelTo", "riskLevel", "risk_level", "kyt_risk_level", "riskLevelFrom")


@dataclass(frozen=True, slots=True)
class Facts:
    """The risk-relevant facts of one event; None where the event does not say."""

    provider: str
    idempotency_key: str
    received_at: float
    wallet: str | None
    counterparty: str | None
    asset: str | None
    amount: Decimal | None
    kyt_level: int | None
    rejected: bool


def to_json(f: Facts) -> dict[str, object]:
    """Job-payload form (amounts as strings)."""
    return {
        "provider": f.provider,
        "idempotency_key": f.idempotency_key,
        "received_at": f.received_at,
        "wallet": f.wallet,
        "counterparty": f.counterparty,
        "asset": f.asset,
        "amount": None if f.amount is None else str(f.amount),
        "kyt_level": f.kyt_level,
        "rejected": f.rejected,
    }


def from_json(data: object) -> Facts:
    """Rebuild facts from a job payload; InvalidInput when it is not one."""
    if not isinstance(data, dict):
        raise InvalidInput("facts", "not an object")
    try:
        return Facts(
            provider=str(data["provider"]),
            idempotency_key=str(data["idempotency_key"]),
            received_at=float(data["received_at"]),
            wallet=_opt(data.get("wallet")),
            counterparty=_opt(data.get("counterparty")),
            asset=_opt(data.get("asset")),
            amount=_decimal(_opt(data.get("amount"))),
            kyt_level=None if data.get("kyt_level") is None else int(data["kyt_level"]),
            rejected=bool(data.get("rejected")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput("facts", f"malformed: {e}") from e


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def facts(event: EventEnvelope) -> Facts:
    """Pick the facts out of an event's payload (the same field names notifications use)."""
    payload = payload_of(event)
    amounts = pick(payload, ("amount", "value"), amounts=True)
    assets = pick(payload, ("currency", "symbol", "coin", "token_id", "asset"))
    decision = (event.decision or {}).get("action") if event.decision else None
    return Facts(
        provider=event.provider,
        idempotency_key=event.idempotency_key,
        received_at=event.received_at,
        wallet=_first(pick(payload, WALLET_KEYS)),
        counterparty=_first(pick(payload, COUNTERPARTY_KEYS)),
        asset=_first(assets),
        amount=_decimal(_first(amounts)),
        kyt_level=_level(_first(pick(payload, KYT_KEYS))),
        rejected=str(decision).upper() == "REJECT",
    )


def _first(found: dict[str, str]) -> str | None:
    return next(iter(found.values()), None)


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _level(text: str | None) -> int | None:
    value = _decimal(text)
    return None if value is None else int(value.to_integral_value(rounding="ROUND_CEILING"))
