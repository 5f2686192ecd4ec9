"""Traffic and the ack path: callbacks per provider and outcome, dedup rate, answer times, spool,
Redis/PostgreSQL reachability, admin API answers.
"""

from __future__ import annotations

from typing import Any

from .panels import PROVIDER, RATE, dashboard, per, quantiles, stat, timeseries, variable


def build() -> dict[str, Any]:
    callbacks = f"callgate_callbacks_total{{{PROVIDER}}}"
    return dashboard(
        "callgate-traffic",
        "callgate / traffic and ack path",
        [
            [
                stat("Callbacks/s", f"sum(rate({callbacks}[{RATE}]))", unit="reqps"),
                stat(
                    "Refused (503) /s",
                    f'sum(rate(callgate_callbacks_total{{{PROVIDER},outcome="unavailable"}}[{RATE}]))',
                    unit="reqps",
                    red_above=0,
                ),
                stat("Redis reachable (processes)", "sum(callgate_redis_up)"),
                stat("PostgreSQL reachable (processes)", "sum(callgate_postgres_up)"),
                stat("Spool bytes", "sum(callgate_spool_bytes)", unit="bytes", red_above=0),
            ],
            [
                timeseries(
                    "Callbacks by provider",
                    [(f"sum by (provider) (rate({callbacks}[{RATE}]))", "{{provider}}")],
                    unit="reqps",
                ),
                timeseries(
                    "Outcomes",
                    [(f"sum by (outcome) (rate({callbacks}[{RATE}]))", "{{outcome}}")],
                    unit="reqps",
                    stack=True,
                ),
            ],
            [
                timeseries(
                    "Dedup rate (duplicates / all)",
                    [
                        (
                            "sum by (provider) "
                            f'(rate(callgate_callbacks_total{{{PROVIDER},outcome="duplicate"}}[{RATE}]))'
                            f" / sum by (provider) (rate({callbacks}[{RATE}]))",
                            "{{provider}}",
                        )
                    ],
                    unit="percentunit",
                ),
                timeseries(
                    "Rejected input (unauthorized, invalid, too large)",
                    [
                        (
                            f"sum by (provider, outcome) (rate(callgate_callbacks_total"
                            f'{{{PROVIDER},outcome=~"unauthorized|invalid|too_large|error"}}[{RATE}]))',
                            "{{provider}} {{outcome}}",
                        )
                    ],
                    unit="reqps",
                ),
            ],
            [
                timeseries("Answer time by route", quantiles("callgate_request_duration_seconds", "route"), unit="s"),
                timeseries(
                    "Redis dedup+enqueue round trip",
                    [
                        *quantiles("callgate_enqueue_duration_seconds", "job"),
                        (
                            f"sum(rate(callgate_enqueue_batch_size_sum[{RATE}])) "
                            f"/ sum(rate(callgate_enqueue_batch_size_count[{RATE}]))",
                            "mean batch size",
                        ),
                    ],
                    unit="s",
                ),
            ],
            [
                timeseries(
                    "Spool records",
                    [per("direction", "callgate_spool_records_total")],
                    unit="ops",
                ),
                timeseries(
                    "Redis up and spool bytes per process",
                    [("callgate_redis_up", "redis {{instance}}"), ("callgate_spool_bytes", "spool {{instance}}")],
                ),
                timeseries(
                    "Admin API answers by route and outcome",
                    [per("route, outcome", "callgate_admin_requests_total", fn="increase")],
                ),
            ],
        ],
        [variable("provider", "label_values(callgate_callbacks_total, provider)")],
    )
