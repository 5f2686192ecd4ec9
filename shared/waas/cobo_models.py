"""Typed WaaS 2.0 values we read: the TSSRequest object and the TSS-request webhook event.

Pure codecs: `parse_*` take decoded JSON and return frozen dataclasses or raise InvalidInput.
Cobo's SDK marks every TSSRequest field optional and maps unknown enum strings to UNKNOWN; we do
the same (an unknown status is kept, verbatim, never a crash) but insist on the request id, which
is the one thing reconciliation cannot do without.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from shared.errors import InvalidInput
from shared.providers.jsonfields import opt_text, opt_uint, text

__all__ = [
    "TSS_REQUEST_EVENT_PREFIX",
    "TSSRequest",
    "TSSRequestStatus",
    "TssRequestEvent",
    "parse_tss_request",
    "parse_tss_request_event",
]

TSS_REQUEST_EVENT_PREFIX = "wallets.mpc.tss_request."


class TSSRequestStatus(StrEnum):
    """WaaS 2.0 `TSSRequestStatus` (cobo-waas2 1.46.0 models/tss_request_status.py)."""

    PENDING_KEY_HOLDER_CONFIRMATION = "PendingKeyHolderConfirmation"
    KEY_HOLDER_CONFIRMATION_FAILED = "KeyHolderConfirmationFailed"
    KEY_GENERATING = "KeyGenerating"
    MPC_PROCESSING = "MPCProcessing"
    KEY_GENERATING_FAILED = "KeyGeneratingFailed"
    SUCCESS = "Success"
    # Not a Cobo value: what we hold when WaaS sends a status this code does not know yet.
    UNKNOWN = "Unknown"

    @classmethod
    def from_wire(cls, value: str) -> TSSRequestStatus:
        """Map a wire string to a member, UNKNOWN for anything unrecognised (the raw string is kept elsewhere)."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        """True once WaaS will not move the request any further."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        TSSRequestStatus.SUCCESS,
        TSSRequestStatus.KEY_GENERATING_FAILED,
        TSSRequestStatus.KEY_HOLDER_CONFIRMATION_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class TSSRequest:
    """A WaaS TSS request as `GET /v2/wallets/mpc/vaults/{vault_id}/tss_requests/{id}` returns it."""

    tss_request_id: str
    status: TSSRequestStatus
    # The status string exactly as WaaS sent it ("" when absent): the record keeps unknown values.
    status_raw: str
    type: str | None
    target_key_share_holder_group_id: str | None
    description: str | None
    created_timestamp_ms: int | None

    def snapshot(self) -> dict[str, object]:
        """The request as WaaS names its fields (raw status kept), for storage and answers."""
        return {
            "tss_request_id": self.tss_request_id,
            "status": self.status_raw,
            "type": self.type,
            "target_key_share_holder_group_id": self.target_key_share_holder_group_id,
            "description": self.description,
            "created_timestamp": self.created_timestamp_ms,
        }


@dataclass(frozen=True, slots=True)
class TssRequestEvent:
    """A verified `wallets.mpc.tss_request.*` webhook event (only what reconciliation needs)."""

    event_id: str
    type: str
    created_timestamp_ms: int | None
    request: TSSRequest


def _object(data: object, field: str) -> Mapping[object, object]:
    if not isinstance(data, dict):
        raise InvalidInput(field, "must be a JSON object")
    return data


def parse_tss_request(data: object) -> TSSRequest:
    """Parse a WaaS `TSSRequest` JSON object; InvalidInput if it is not one."""
    obj = _object(data, "tss_request")
    status_raw = opt_text(obj, "status") or ""
    return TSSRequest(
        tss_request_id=text(obj, "tss_request_id"),
        status=TSSRequestStatus.from_wire(status_raw),
        status_raw=status_raw,
        type=opt_text(obj, "type"),
        target_key_share_holder_group_id=opt_text(obj, "target_key_share_holder_group_id"),
        description=opt_text(obj, "description"),
        created_timestamp_ms=opt_uint(obj, "created_timestamp"),
    )


def parse_tss_request_event(data: object) -> TssRequestEvent | None:
    """Parse a WaaS 2.0 `WebhookEvent`; None when it is a valid event of another type.

    Other event types are not an error: one webhook endpoint receives every type the Cobo Portal
    subscription selects, and Cobo retries anything that is not 200/201.
    """
    obj = _object(data, "event")
    event_type = text(obj, "type")
    if not event_type.startswith(TSS_REQUEST_EVENT_PREFIX):
        return None
    payload = _object(obj.get("data"), "data")
    data_type = opt_text(payload, "data_type")
    # The SDK names the data type "TSSRequest"; tolerate its absence, refuse a contradicting one.
    if data_type is not None and data_type != "TSSRequest":
        raise InvalidInput("data.data_type", f"expected TSSRequest for {event_type}")
    return TssRequestEvent(
        event_id=text(obj, "event_id"),
        type=event_type,
        created_timestamp_ms=opt_uint(obj, "created_timestamp"),
        request=parse_tss_request(payload),
    )
