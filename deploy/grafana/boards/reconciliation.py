"""Reconciliation and notifications: WaaS lag, disagreements and API health, deliveries, attempts
and circuit breakers.
"""

from __future__ import annotations

from typing import Any

from .panels import PROVIDER, RATE, dashboard, per, quantiles, stat, timeseries, variable


def build() -> dict[str, Any]:
    return dashboard(
        "callgate-reconciliation",
        "callgate / reconciliation and notifications",
        [
            [
                stat(
                    "Disagreements (24h)",
                    f"sum(increase(callgate_reconcile_disagreements_total{{{PROVIDER}}}[24h]))",
                    red_above=0,
                ),
                stat("Pending reconciliations", f"sum(max by (provider) (callgate_reconcile_pending{{{PROVIDER}}}))"),
                stat(
                    "Deliveries/s",
                    f'sum(rate(callgate_notification_deliveries_total{{outcome="delivered"}}[{RATE}]))',
                    unit="ops",
                ),
                stat(
                    "Breakers open (approx.)",
                    'sum(increase(callgate_notification_breaker_transitions_total{change="opened"}[1h]))'
                    ' - sum(increase(callgate_notification_breaker_transitions_total{change="closed"}[1h]))',
                    red_above=0,
                ),
            ],
            [
                timeseries(
                    "Reconciliation lag (report → WaaS state stored)",
                    quantiles("callgate_reconcile_lag_seconds", "provider", PROVIDER),
                    unit="s",
                ),
                timeseries(
                    "Disagreements and pending",
                    [
                        (
                            "sum by (provider) "
                            f"(increase(callgate_reconcile_disagreements_total{{{PROVIDER}}}[{RATE}]))",
                            "disagree {{provider}}",
                        ),
                        (f"max by (provider) (callgate_reconcile_pending{{{PROVIDER}}})", "pending {{provider}}"),
                    ],
                ),
            ],
            [
                timeseries(
                    "WaaS API calls by outcome",
                    [per("provider, outcome", "callgate_waas_calls_total", PROVIDER)],
                    unit="reqps",
                    stack=True,
                ),
                timeseries(
                    "WaaS API latency", quantiles("callgate_waas_call_duration_seconds", "provider", PROVIDER), unit="s"
                ),
            ],
            [
                timeseries(
                    "Notification deliveries by outcome",
                    [per("outcome", "callgate_notification_deliveries_total")],
                    unit="ops",
                    stack=True,
                ),
                timeseries(
                    "Delivery attempt time and attempts needed",
                    [
                        *quantiles("callgate_notification_attempt_duration_seconds", "job"),
                        (
                            f"sum(rate(callgate_notification_delivered_attempt_sum[{RATE}]))"
                            f" / sum(rate(callgate_notification_delivered_attempt_count[{RATE}]))",
                            "mean attempt # when delivered",
                        ),
                    ],
                    unit="s",
                ),
            ],
            [
                timeseries(
                    "Circuit breaker transitions",
                    [per("change", "callgate_notification_breaker_transitions_total", fn="increase")],
                ),
                timeseries(
                    "UU Wallet deposits held for review",
                    [(f"sum(increase(callgate_uuwallet_deposits_held_total[{RATE}]))", "held")],
                ),
            ],
        ],
        [variable("provider", "label_values(callgate_reconcile_pending, provider)")],
    )
