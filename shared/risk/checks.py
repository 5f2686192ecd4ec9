"""Risk rules as data, and the pure judgement of one event's facts against them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from shared.risk.facts import Facts
from shared.risk.velocity import Measure


@dataclass(frozen=True, slots=True)
class VelocityLimit:
    """At most `max_count` events (and `max_amount` summed, when given) per scope in `window_s`."""

    window_s: int
    max_count: int
    max_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RiskConfig:
    velocity: tuple[VelocityLimit, ...] = (VelocityLimit(60, 30), VelocityLimit(3600, 500))
    deny_counterparties: frozenset[str] = frozenset()
    # Per asset (upper case); "*" applies to assets not listed. Empty: no large-amount alerts.
    large_amounts: Mapping[str, Decimal] = field(default_factory=dict)
    kyt_alert_level: int = 50  # a KYT risk level at or above this is a finding
    kyt_freeze_level: int = 90  # ... and at or above this freezes the wallet
    reject_window_s: int = 3600
    rejects_to_freeze: int = 5  # synchronous REJECTs for one wallet in the window

    @property
    def windows_s(self) -> tuple[int, ...]:
        return tuple(limit.window_s for limit in self.velocity)


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # velocity_count, velocity_amount, deny_list, large_amount, kyt_level, repeated_rejects
    severity: str  # alert | freeze
    detail: str


def judge(config: RiskConfig, facts: Facts, measures: Sequence[Measure], rejects: int) -> list[Finding]:
    """Every rule the event trips, in a fixed order; one finding per check at most."""
    found: dict[str, Finding] = {}
    for m in measures:
        limit = next(v for v in config.velocity if v.window_s == m.window_s)
        if m.count > limit.max_count and "velocity_count" not in found:
            found["velocity_count"] = Finding(
                "velocity_count", "alert", f"{m.scope}: {m.count} events in {m.window_s} s"
            )
        if limit.max_amount is not None and m.total > limit.max_amount and "velocity_amount" not in found:
            found["velocity_amount"] = Finding("velocity_amount", "alert", f"{m.scope}: {m.total} in {m.window_s} s")
    if facts.counterparty is not None and facts.counterparty in config.deny_counterparties:
        found["deny_list"] = Finding("deny_list", "freeze", f"counterparty {facts.counterparty} is denied")
    threshold = _large_threshold(config, facts.asset)
    if facts.amount is not None and threshold is not None and facts.amount >= threshold:
        found["large_amount"] = Finding("large_amount", "alert", f"{facts.amount} {facts.asset} >= {threshold}")
    if facts.kyt_level is not None and facts.kyt_level >= config.kyt_alert_level:
        severity = "freeze" if facts.kyt_level >= config.kyt_freeze_level else "alert"
        found["kyt_level"] = Finding("kyt_level", severity, f"KYT risk level {facts.kyt_level}")
    if rejects >= config.rejects_to_freeze:
        found["repeated_rejects"] = Finding(
            "repeated_rejects", "freeze", f"{rejects} rejected requests in {config.reject_window_s} s"
        )
    return list(found.values())


def _large_threshold(config: RiskConfig, asset: str | None) -> Decimal | None:
    if asset is not None and asset.upper() in config.large_amounts:
        return config.large_amounts[asset.upper()]
    return config.large_amounts.get("*")
