"""Cobo UCW TSS request callback: request parsing and the response envelope.

A User-Controlled Wallet client (the UCW SDK side) reports "TSS request X is now in state N" with
`POST /api/v1/wallets/{wallet_uuid}/tss/callback` (seed `cobo-ucw-tss-request-callback.txt`). The
reported number is information only: the truth is read from WaaS by reconciliation. Pure codecs:
`parse_*` return frozen dataclasses or raise InvalidInput.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from shared.errors import InvalidInput
from shared.waas.cobo_models import TSSRequestStatus

__all__ = [
    "PROVIDER",
    "Agreement",
    "CallbackResult",
    "KeyShareGroup",
    "KeyShareParticipant",
    "TssCallback",
    "UcwStatus",
    "compare",
    "envelope",
    "error_envelope",
    "idempotency_key",
    "parse_tss_callback",
    "parse_wallet_uuid",
    "status_name",
]

PROVIDER = "cobo_ucw"

# Bounds on what we accept: far above anything a keygen/reshare carries, far below memory trouble.
_MAX_STR = 1024
_MAX_ITEMS = 64
# WaaS ids are digit strings ("20240711114129000132315000003970"); accept any printable ASCII
# without spaces so an id format change does not break us (the WaaS client percent-encodes it).
_TSS_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
# The UCW SDK's status values are sent 32-bit; anything outside is not a status.
_INT32 = 2**31


class UcwStatus(IntEnum):
    """UCW SDK TSS request status, as reported by the client (information only).

    Only 130 Approving and 190 Completed are documented for UCW; the rest is the cobo-waas2
    `TSSStatus` table, which we infer (protocols/cobo.md B.6 [I]) to be the same enum.
    Unknown values are accepted and kept as plain ints.
    """

    UNDEFINED = 100
    SCHEDULING = 110
    INITIALIZING = 120
    APPROVING = 130
    PROCESSING = 140
    DECLINED = 160
    FAILED = 170
    CANCELED = 180
    COMPLETED = 190


_REPORTED_SUCCESS = frozenset({UcwStatus.COMPLETED})
_REPORTED_FAILURE = frozenset({UcwStatus.DECLINED, UcwStatus.FAILED, UcwStatus.CANCELED})


class Agreement(StrEnum):
    """How a reported status relates to the WaaS state."""

    AGREE = "agree"
    # The report says "done" and WaaS is not there yet: normal for a few seconds, re-check.
    PENDING = "pending"
    DISAGREE = "disagree"
    # The report is non-terminal or unknown: it carries no claim WaaS could contradict.
    NO_CLAIM = "no_claim"


def compare(reported: int, waas: TSSRequestStatus, *, horizon_reached: bool = False) -> Agreement:
    """Judge a report against the WaaS state (the truth).

    A client reporting Completed (190) while WaaS settled on a failure, or a failure while WaaS says
    Success, disagrees. A terminal report while WaaS is still moving is only pending, until the
    re-check horizon passes: then it disagrees too (WaaS never got where the client said).
    """
    claims_success = reported in _REPORTED_SUCCESS
    if not claims_success and reported not in _REPORTED_FAILURE:
        return Agreement.NO_CLAIM
    if not waas.is_terminal:
        return Agreement.DISAGREE if horizon_reached else Agreement.PENDING
    if claims_success == (waas is TSSRequestStatus.SUCCESS):
        return Agreement.AGREE
    return Agreement.DISAGREE


def status_name(status: int) -> str:
    """A readable name for a reported status; `Unknown(<n>)` for values not in the table."""
    try:
        return UcwStatus(status).name.title()
    except ValueError:
        return f"Unknown({status})"


@dataclass(frozen=True, slots=True)
class KeyShareParticipant:
    node_id: str
    share_id: str
    share_public_key: str


@dataclass(frozen=True, slots=True)
class KeyShareGroup:
    id: str
    type: int | None
    created_timestamp: int | None
    root_extended_public_key: str
    chaincode: str
    curve: str
    threshold: int | None
    participants: tuple[KeyShareParticipant, ...]


@dataclass(frozen=True, slots=True)
class TssCallback:
    """A parsed UCW TSS request callback body."""

    tss_request_id: str
    status: int
    results: tuple[KeyShareGroup, ...]
    failed_reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """The `result` object of the answer: the row as currently known (WaaS status, not the report)."""

    tss_request_id: str
    status: str
    waas_status_snapshot: str


# -- field helpers ---------------------------------------------------------------------------


def _str(obj: Mapping[str, object], field: str, *, path: str, default: str | None = None) -> str:
    value = obj.get(field, default)
    if not isinstance(value, str) or len(value) > _MAX_STR:
        raise InvalidInput(f"{path}{field}", f"must be a string of at most {_MAX_STR} characters")
    return value


def _int(obj: Mapping[str, object], field: str, *, path: str, required: bool = False) -> int | None:
    value = obj.get(field)
    if value is None and not required:
        return None
    # JSON true/false are ints to Python; they are not statuses or thresholds.
    if not isinstance(value, int) or isinstance(value, bool) or not -_INT32 <= value < _INT32:
        raise InvalidInput(f"{path}{field}", "must be a 32-bit integer")
    return value


def _list(obj: Mapping[str, object], field: str) -> list[object]:
    value = obj.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise InvalidInput(field, f"must be a list of at most {_MAX_ITEMS} items")
    return value


def _obj(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise InvalidInput(path, "must be a JSON object")
    return value


# -- parsing ---------------------------------------------------------------------------------


def parse_wallet_uuid(value: str) -> str:
    """Validate the `{wallet_uuid}` path segment; return its canonical lower-case hyphenated form."""
    # uuid.UUID also takes braces and "urn:uuid:" prefixes; the route wants a bare UUID.
    if len(value) not in (32, 36):
        raise InvalidInput("wallet_uuid", "must be a UUID")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput("wallet_uuid", "must be a UUID") from None


def _participant(data: object, path: str) -> KeyShareParticipant:
    obj = _obj(data, path)
    prefix = f"{path}."
    # The seed types these as plain strings without defaults; tolerate absence (the SDK may omit them).
    return KeyShareParticipant(
        node_id=_str(obj, "node_id", path=prefix, default=""),
        share_id=_str(obj, "share_id", path=prefix, default=""),
        share_public_key=_str(obj, "share_public_key", path=prefix, default=""),
    )


def _group(data: object, path: str) -> KeyShareGroup:
    obj = _obj(data, path)
    prefix = f"{path}."
    participants = obj.get("participants") or []
    if not isinstance(participants, list) or len(participants) > _MAX_ITEMS:
        raise InvalidInput(f"{prefix}participants", f"must be a list of at most {_MAX_ITEMS} items")
    return KeyShareGroup(
        id=_str(obj, "id", path=prefix, default=""),
        type=_int(obj, "type", path=prefix),
        created_timestamp=_int_any(obj, "created_timestamp", prefix),
        root_extended_public_key=_str(obj, "root_extended_public_key", path=prefix, default=""),
        chaincode=_str(obj, "chaincode", path=prefix, default=""),
        curve=_str(obj, "curve", path=prefix, default=""),
        threshold=_int(obj, "threshold", path=prefix),
        participants=tuple(_participant(p, f"{prefix}participants[{i}]") for i, p in enumerate(participants)),
    )


def _int_any(obj: Mapping[str, object], field: str, path: str) -> int | None:
    # Timestamps do not fit 32 bits (ms since 1970); still refuse bools and absurd sizes.
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise InvalidInput(f"{path}{field}", "must be a non-negative integer")
    return value


def parse_tss_callback(data: object) -> TssCallback:
    """Parse the callback body (`tss_request_id`, `status`, optional `results`, `failed_reasons`)."""
    obj = _obj(data, "body")
    tss_request_id = obj.get("tss_request_id")
    if not isinstance(tss_request_id, str) or not _TSS_REQUEST_ID.fullmatch(tss_request_id):
        raise InvalidInput("tss_request_id", "must be 1-128 printable ASCII characters without spaces")
    status = _int(obj, "status", path="", required=True)
    assert status is not None  # required=True never returns None
    reasons = _list(obj, "failed_reasons")
    if not all(isinstance(r, str) and len(r) <= _MAX_STR for r in reasons):
        raise InvalidInput("failed_reasons", f"must be strings of at most {_MAX_STR} characters")
    return TssCallback(
        tss_request_id=tss_request_id,
        status=status,
        results=tuple(_group(g, f"results[{i}]") for i, g in enumerate(_list(obj, "results"))),
        failed_reasons=tuple(str(r) for r in reasons),
    )


def idempotency_key(wallet_uuid: str, callback: TssCallback) -> str:
    """(wallet_uuid, tss_request_id, status): a new status is a new report, a repeat is a duplicate."""
    return f"{wallet_uuid}\x1f{callback.tss_request_id}\x1f{callback.status}"


# -- answers ---------------------------------------------------------------------------------


def envelope(result: CallbackResult) -> dict[str, object]:
    """The seed's success envelope. `meta` is pagination metadata, meaningless here: sent as null."""
    return {
        "result": {
            "tss_request_id": result.tss_request_id,
            "status": result.status,
            "waas_status_snapshot": result.waas_status_snapshot,
        },
        "success": True,
        "suggestion": "",
        "message": "",
        "meta": None,
    }


def error_envelope(message: str, *, suggestion: str = "") -> dict[str, object]:
    """The same envelope for a refusal: `success: false`, no result, a clear message."""
    return {"result": None, "success": False, "suggestion": suggestion, "message": message, "meta": None}
