"""What happens after an event is stored, per provider (reconciliation, notifications, ...).

Each follow-up must be idempotent: it runs again when `store_event` is retried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from workers import deliver, risk, tss_followups

if TYPE_CHECKING:
    from workers.deps import WorkerDeps
    from workers.writer import Stored

FollowUp = Callable[["WorkerDeps", "Stored"], Awaitable[None]]

FOLLOW_UPS: Mapping[str, tuple[FollowUp, ...]] = {
    # >>> follow-ups (provider: (functions,))
    "cobo_ucw": (tss_followups.follow_report,),
    "cobo_waas": (tss_followups.follow_webhook,),
    "*": (deliver.follow_event, risk.follow_event),  # every provider: notify subscribers, check risk
    # <<< follow-ups
}
