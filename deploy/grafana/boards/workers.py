"""Queue and workers: depth and oldest due job, job runs and durations, events stored, dead
letters, risk checks, service health.
"""

from __future__ import annotations

from typing import Any

from .panels import dashboard, per, quantiles, stat, timeseries


def build() -> dict[str, Any]:
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
