"""Job names and the payload every accepted callback becomes.

The gateway enqueues by name (a constant here), never by importing worker code. Payloads are
JSON-safe primitives: nothing that crossed the gateway is ever pickled.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import InvalidInput

# -- job names -------------------------------------------------------------------------------

STORE_EVENT = "store_event"
# >>> job names (one line per job)
RECONCILE_TSS_REQUEST = "reconcile_tss_request"  # cobo_ucw: read WaaS, store the truth
DELIVER_NOTIFICATION = "deliver_notification"  # notifications: one attempt to send one notification
ASSESS_RISK = "assess_risk"  # risk: velocity, deny lists, KYT, repeated rejects; may freeze a wallet
# <<< job names

JsonObject = dict[str, Any]


def delivery_job_id(notification_id: str, attempt: int) -> str:
    """The arq job id of one delivery attempt: stable, so a repeated enqueue (a retry, a replay
    from the CLI or the console) of the same attempt is a no-op while it is queued."""
    return f"notify:{notification_id}:{attempt}"


# Header names whose values are credentials: dropped before anything is stored or logged.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "x-api-key",
        "x-api-signature",
        "biz-api-signature",
        "biz-resp-signature",
        "x-callgate-token",
        "proxy-authorization",
    }
)


def scrub_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers fit to store: credentials replaced by a marker, everything else kept."""
    # str(k): aiohttp hands out istr keys, which orjson refuses as dict keys.
    return {str(k): ("<redacted>" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def key_hash(provider: str, idempotency_key: str) -> str:
    """A fixed-length digest of (provider, key): Redis key suffix and arq job id."""
    return hashlib.sha256(f"{provider}\x1f{idempotency_key}".encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    """An authenticated, parsed callback on its way from the gateway to the workers.

    `payload` is the normalised JSON form; None means the raw body is itself the JSON payload
    (Wyre): the worker stores the raw text as jsonb, which keeps every number exact.
    """

    provider: str
    kind: str
    idempotency_key: str
    received_at: float
    raw_body: bytes
    request_id: str
    headers: dict[str, str] = field(default_factory=dict)
    payload: JsonObject | None = None
    status: str = "received"
    decision: JsonObject | None = None
    policy_version: int | None = None

    @property
    def job_id(self) -> str:
        return f"{self.provider}:{key_hash(self.provider, self.idempotency_key)}"

    def to_json(self) -> JsonObject:
        return {
            "provider": self.provider,
            "kind": self.kind,
            "idempotency_key": self.idempotency_key,
            "received_at": self.received_at,
            "raw_body": base64.b64encode(self.raw_body).decode(),
            "request_id": self.request_id,
            "headers": self.headers,
            "payload": self.payload,
            "status": self.status,
            "decision": self.decision,
            "policy_version": self.policy_version,
        }

    @classmethod
    def from_json(cls, data: object) -> EventEnvelope:
        """Rebuild an envelope from a job payload (ours, but checked: it crossed Redis)."""
        if not isinstance(data, dict):
            raise InvalidInput("envelope", "not an object")
        try:
            return cls(
                provider=str(data["provider"]),
                kind=str(data["kind"]),
                idempotency_key=str(data["idempotency_key"]),
                received_at=float(data["received_at"]),
                raw_body=base64.b64decode(data["raw_body"]),
                request_id=str(data["request_id"]),
                headers=dict(data.get("headers") or {}),
                payload=data.get("payload"),
                status=str(data.get("status") or "received"),
                decision=data.get("decision"),
                policy_version=data.get("policy_version"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidInput("envelope", f"malformed: {e}") from e
