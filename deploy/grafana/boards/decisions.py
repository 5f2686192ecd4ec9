"""Synchronous decisions and policy: decisions by action, type and reason, evaluation time, policy
versions per process, shadow disagreements, order replica, signer restarts.
"""

from __future__ import annotations

from typing import Any

from .panels import PROVIDER, RATE, dashboard, per, quantiles, stat, timeseries, variable


def build() -> dict[str, Any]:
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
                timeseries(
                    "Cobo TSS signer processes restarted",
                    [per("instance", "callgate_signer_restarts_total", fn="increase")],
                ),
            ],
        ],
        [variable("provider", "label_values(callgate_decisions_total, provider)")],
    )
