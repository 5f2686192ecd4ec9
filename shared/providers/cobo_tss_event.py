"""Cobo TSS Node events (`POST /v2/event`): same token layout as the check, its own key.

The event JSON sits in the `package_data` claim (cobo-waas2 `TSSEvent`, protocols/cobo.md A.6):
`{event_id, created_timestamp, node_id, event_type, data: {request_id, request_type,
request_status, ...}}`. Events are information, not questions: we keep the whole JSON for the
workers and read only what identifies it. [I] `event_id` is unique per event and stable across
redeliveries; when it is missing we fall back to a hash of the content, so a redelivery still
dedups.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from shared.errors import InvalidInput
from shared.providers.cobo_tss_fields import text

_MAX_KIND = 80


@dataclass(frozen=True, slots=True)
class TssEvent:
    event_id: str
    event_type: str  # ping, request.keysign.created, ...
    node_id: str
    request_id: str
    body: dict[str, Any]  # the whole event JSON, for the audit row

    @property
    def kind(self) -> str:
        """The stored event kind: `event.<event_type>`, bounded."""
        return "event." + (self.event_type or "unknown")[:_MAX_KIND]

    @property
    def idempotency_key(self) -> str:
        return (
            self.event_id
            or "sha256:" + hashlib.sha256(orjson.dumps(self.body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        )


def parse_event(data: object) -> TssEvent:
    """Read the identifying fields of a decoded event; raises InvalidInput on wrong types."""
    if not isinstance(data, dict):
        raise InvalidInput("package_data", "not a JSON object")
    inner = data.get("data")
    if inner is not None and not isinstance(inner, dict):
        raise InvalidInput("event.data", "not an object")
    return TssEvent(
        event_id=text(data, "event_id", "event"),
        event_type=text(data, "event_type", "event"),
        node_id=text(data, "node_id", "event"),
        request_id=text(inner or {}, "request_id", "event.data"),
        body=data,
    )
