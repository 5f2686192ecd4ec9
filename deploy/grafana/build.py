"""Writes the Grafana dashboards in deploy/grafana/dashboards/ (run: `python deploy/grafana/build.py`).

The JSON files are generated so that every panel has the same shape and every query is in one
readable place; tests/deploy checks the files are what this script writes and that every query
names metrics the code defines. Edit here, not in the JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "callgate-prometheus"}  # provisioning/datasources/prometheus.yml
PROVIDER = 'provider=~"$provider"'
RATE = "$__rate_interval"

Panel = dict[str, Any]


def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + ref)}


def timeseries(title: str, queries: list[tuple[str, str]], *, unit: str = "short", stack: bool = False) -> Panel:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "targets": [_target(expr, legend, i) for i, (expr, legend) in enumerate(queries)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"fillOpacity": 20 if stack else 0, "stacking": {"mode": "normal" if stack else "none"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]}},
    }


def stat(title: str, expr: str, *, unit: str = "short", red_above: float | None = None) -> Panel:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if red_above is not None:
        steps.append({"color": "red", "value": red_above})
    return {
        "type": "stat",
        "title": title,
        "datasource": DATASOURCE,
        "targets": [_target(expr, "", 0)],
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
    }


def quantiles(metric: str, by: str, where: str = "") -> list[tuple[str, str]]:
    selector = f"{metric}_bucket{{{where}}}" if where else f"{metric}_bucket"
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({selector}[{RATE}])))", f"p{round(q * 100)} {{{{{by}}}}}")
        for q in (0.5, 0.99)
    ]


def per(labels: str, metric: str, where: str = "", *, fn: str = "rate") -> tuple[str, str]:
    """`sum by (labels)` of a counter's rate (or increase), with the labels as the legend."""
    selector = f"{metric}{{{where}}}" if where else metric
    legend = " ".join(f"{{{{{label.strip()}}}}}" for label in labels.split(","))
    return f"sum by ({labels}) ({fn}({selector}[{RATE}]))", legend


def _layout(rows: list[list[Panel]]) -> list[Panel]:
    panels, y, next_id = [], 0, 1
    for row in rows:
        width = 24 // len(row)
        height = 4 if all(p["type"] == "stat" for p in row) else 8
        for x, panel in enumerate(row):
            panels.append({**panel, "id": next_id, "gridPos": {"h": height, "w": width, "x": x * width, "y": y}})
            next_id += 1
        y += height
    return panels


def _variable(name: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": multi,
        "multi": multi,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"} if multi else {},
    }


def dashboard(uid: str, title: str, rows: list[list[Panel]], variables: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["callgate"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["callgate"], "asDropdown": True, "title": "callgate"}],
        "panels": _layout(rows),
    }


def traffic() -> dict[str, Any]:
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
        [_variable("provider", "label_values(callgate_callbacks_total, provider)")],
    )


def decisions() -> dict[str, Any]:
    return dashboard(
        "callgate-decisions",
        "callgate / synchronous decisions and policy",
        [
            [
                stat("Decisions/s", f"sum(rate(callgate_decisions_total{{{PROVIDER}}}[{RATE}]))", unit="reqps"),
                stat(
                    "Rejected share",
                    f'sum(rate(callgate_decisions_total{{{PROVIDER},action="REJECT"}}[{RATE}]))'
                    f" / sum(rate(callgate_decisions_total{{{PROVIDER}}}[{RATE}]))",
                    unit="percentunit",
                ),
                stat(
                    "Policy versions in use", 'count(count_values("v", callgate_policy_version{component="gateway"}))'
                ),
                stat("Oldest policy age", 'max(callgate_policy_age_seconds{component="gateway"})', unit="s"),
            ],
            [
                timeseries(
                    "Decisions by provider and action",
                    [per("provider, action", "callgate_decisions_total", PROVIDER)],
                    unit="reqps",
                    stack=True,
                ),
                timeseries(
                    "Decisions by request type",
                    [per("provider, request_type", "callgate_decisions_total", PROVIDER)],
                    unit="reqps",
                ),
            ],
            [
                timeseries(
                    "Top reasons",
                    [
                        (
                            f"topk(10, sum by (reason) (rate(callgate_decisions_total{{{PROVIDER}}}[{RATE}])))",
                            "{{reason}}",
                        )
                    ],
                    unit="reqps",
                ),
                timeseries(
                    "Policy evaluation time",
                    quantiles("callgate_decision_duration_seconds", "provider", PROVIDER),
                    unit="s",
                ),
            ],
            [
                timeseries(
                    "Token failures and replayed request ids",
                    [
                        per("provider, reason", "callgate_token_failures_total", PROVIDER),
                        (
                            f"sum by (provider) (rate(callgate_decision_replays_total{{{PROVIDER}}}[{RATE}]))",
                            "replay {{provider}}",
                        ),
                    ],
                    unit="reqps",
                ),
                timeseries(
                    "UU Wallet second confirmations",
                    [per("outcome", "callgate_uuwallet_confirmations_total")],
                    unit="reqps",
                ),
            ],
            [
                timeseries(
                    "Policy version per process",
                    [('callgate_policy_version{component="gateway"}', "{{instance}}")],
                ),
                timeseries(
                    "Shadow policy disagreements",
                    [per("provider, rule", "callgate_policy_shadow_disagreements_total", PROVIDER)],
                    unit="reqps",
                ),
                timeseries(
                    "Policy reloads",
                    [per("outcome", "callgate_policy_reloads_total", fn="increase")],
                ),
            ],
            [
                timeseries(
                    "Expected-order replica lag",
                    quantiles("callgate_orders_replica_lag_seconds", "instance"),
                    unit="s",
                ),
                timeseries(
                    "Expected orders held per process",
                    [("callgate_orders_replica_orders", "{{instance}}")],
                ),
            ],
        ],
        [_variable("provider", "label_values(callgate_decisions_total, provider)")],
    )


def workers() -> dict[str, Any]:
    return dashboard(
        "callgate-workers",
        "callgate / queue and workers",
        [
            [
                stat("Queued jobs", "max(callgate_queue_depth)", red_above=1000),
                stat("Oldest due job", "max(callgate_queue_oldest_age_seconds)", unit="s", red_above=300),
                stat("Workers up", 'sum(up{component="worker"})'),
                stat("Dead letters (1h)", "sum(increase(callgate_dead_letters_total[1h]))", red_above=0),
                stat(
                    "Dead letters waiting for replay",
                    "sum(max by (exported_job) (callgate_dead_letters_open))",
                    red_above=0,
                ),
            ],
            [
                timeseries("Queue depth", [("max by (queue) (callgate_queue_depth)", "{{queue}}")]),
                timeseries(
                    "Oldest due job age",
                    [("max by (queue) (callgate_queue_oldest_age_seconds)", "{{queue}}")],
                    unit="s",
                ),
            ],
            [
                timeseries(
                    "Job runs by outcome",
                    [per("exported_job, outcome", "callgate_jobs_total")],
                    unit="ops",
                ),
                timeseries("Job duration", quantiles("callgate_job_duration_seconds", "exported_job"), unit="s"),
            ],
            [
                timeseries(
                    "Events stored",
                    [per("provider, result", "callgate_events_stored_total")],
                    unit="ops",
                ),
                timeseries(
                    "Dead letters by job (new, and waiting for replay)",
                    [
                        per("exported_job", "callgate_dead_letters_total", fn="increase"),
                        ("max by (exported_job) (callgate_dead_letters_open)", "waiting {{exported_job}}"),
                    ],
                ),
            ],
            [
                timeseries("Risk findings", [per("check, severity", "callgate_risk_findings_total")], unit="ops"),
                timeseries("Wallets frozen", [per("check", "callgate_risk_freezes_total", fn="increase")]),
            ],
            [
                timeseries(
                    "Job throughput per worker",
                    [per("instance", "callgate_jobs_total")],
                    unit="ops",
                ),
                timeseries("Scrape targets up", [('up{job=~"callgate.*"}', "{{instance}}")]),
                timeseries(
                    "Redis and PostgreSQL reachable per process",
                    [("callgate_redis_up", "redis {{instance}}"), ("callgate_postgres_up", "postgres {{instance}}")],
                ),
            ],
        ],
        [],
    )


def reconciliation() -> dict[str, Any]:
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
        [_variable("provider", "label_values(callgate_reconcile_pending, provider)")],
    )


DASHBOARDS = {
    "traffic.json": traffic,
    "decisions.json": decisions,
    "workers.json": workers,
    "reconciliation.json": reconciliation,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, build in DASHBOARDS.items():
        (OUT / name).write_text(render(build))


if __name__ == "__main__":
    main()
