"""Every Prometheus metric callgate defines, on an explicit registry.

Label values come from bounded sets (provider, route name, outcome, job name), never ids.
Gateway and worker processes each build their own `Metrics` (tests build fresh ones); several
gateway processes are scraped one target per process (see docs/operations.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
JOB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The metric objects of one process (gateway or worker), on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry(auto_describe=True)
        # gateway
        self.callbacks = Counter(
            "callgate_callbacks_total",
            "Callbacks received, by provider and outcome "
            "(accepted, duplicate, unauthorized, invalid, too_large, spooled, unavailable, error).",
            ["provider", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "callgate_request_duration_seconds",
            "Time from request start to response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.enqueue_seconds = Histogram(
            "callgate_enqueue_duration_seconds",
            "Time of one batched dedup+enqueue round trip to Redis.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.enqueue_batch_size = Histogram(
            "callgate_enqueue_batch_size",
            "Callbacks per batched Redis round trip.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.spool_records = Counter(
            "callgate_spool_records_total",
            "Records written to or replayed from the local spool.",
            ["direction"],
            registry=r,
        )
        self.spool_bytes = Gauge("callgate_spool_bytes", "Bytes waiting in the local spool directory.", registry=r)
        self.redis_up = Gauge(
            "callgate_redis_up", "1 when the last Redis operation of this process succeeded.", registry=r
        )
        self.postgres_up = Gauge(
            "callgate_postgres_up",
            "1 when Postgres answered this process's last probe or query (gateway and worker processes).",
            registry=r,
        )
        self.http_rejections = Counter(
            "callgate_http_rejections_total",
            "Requests answered before any handler: request head too slow (head_timeout), too large "
            "(head_too_large) or malformed (bad_head), or an unknown Expect (bad_expect).",
            ["reason"],
            registry=r,
        )
        self.admin_requests = Counter(
            "callgate_admin_requests_total",
            "Admin API answers, by route name and outcome "
            "(ok, invalid, unauthorized, not_found, conflict, too_large, refused, unavailable, error).",
            ["route", "outcome"],
            registry=r,
        )
        # workers
        self.jobs = Counter(
            "callgate_jobs_total",
            "Jobs finished, by job name and outcome (ok, retry, failed).",
            ["job", "outcome"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "callgate_job_duration_seconds", "Job run time, by job name.", ["job"], buckets=JOB_BUCKETS, registry=r
        )
        self.events_stored = Counter(
            "callgate_events_stored_total",
            "Event rows written (inserted) or found already present.",
            ["provider", "result"],
            registry=r,
        )
        self.queue_depth = Gauge("callgate_queue_depth", "Jobs waiting in the queue.", ["queue"], registry=r)
        self.queue_oldest_age_seconds = Gauge(
            "callgate_queue_oldest_age_seconds", "Age of the oldest job ready to run.", ["queue"], registry=r
        )
        # >>> provider metrics (one block per provider)
        # uuwallet
        self.uuwallet_deposits_held = Counter(
            "callgate_uuwallet_deposits_held_total",
            "UU Wallet deposits stored flagged and held (policy risk threshold exceeded or no policy).",
            registry=r,
        )
        self.uuwallet_confirmations = Counter(
            "callgate_uuwallet_confirmations_total",
            "UU Wallet withdrawal second confirmations answered, by outcome (approved, rejected, replay, "
            "unknown_order, order_expired, order_already_confirmed, order_without_tenant, tenant_mismatch, "
            "no_policy, unavailable).",
            ["outcome"],
            registry=r,
        )
        # cobo_tss (decision metrics carry a provider label: any synchronous provider may use them)
        self.decisions = Counter(
            "callgate_decisions_total",
            "Synchronous decisions answered, by provider, request type, action and first reason code.",
            ["provider", "request_type", "action", "reason"],
            registry=r,
        )
        self.decision_seconds = Histogram(
            "callgate_decision_duration_seconds",
            "Policy evaluation time alone (no I/O, no signing), by provider.",
            ["provider"],
            buckets=(5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3),
            registry=r,
        )
        self.token_failures = Counter(
            "callgate_token_failures_total",
            "Request tokens refused, by provider and reason (bad_signature, expired, alg_not_allowed, ...).",
            ["provider", "reason"],
            registry=r,
        )
        self.signer_restarts = Counter(
            "callgate_signer_restarts_total",
            "Signer processes started again after theirs died (Cobo TSS answers were signed on the "
            "event loop meanwhile).",
            registry=r,
        )
        self.decision_replays = Counter(
            "callgate_decision_replays_total",
            "Requests that reused a request id with different content (answered REJECT).",
            ["provider"],
            registry=r,
        )
        # cobo_ucw / cobo_waas (WaaS reconciliation)
        self.waas_calls = Counter(
            "callgate_waas_calls_total",
            "HTTP attempts to a WaaS API, by provider and outcome "
            "(ok, client_error, server_error, rate_limited, timeout, connection_error, bad_signature, bad_answer).",
            ["provider", "outcome"],
            registry=r,
        )
        self.waas_call_seconds = Histogram(
            "callgate_waas_call_duration_seconds",
            "Duration of one HTTP attempt to a WaaS API, by provider.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reconcile_lag_seconds = Histogram(
            "callgate_reconcile_lag_seconds",
            "From a status report being received to the WaaS state being stored, by provider.",
            ["provider"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.reconcile_disagreements = Counter(
            "callgate_reconcile_disagreements_total",
            "Reports found to contradict the provider API's state (flagged on the row), by provider.",
            ["provider"],
            registry=r,
        )
        self.reconcile_pending = Gauge(
            "callgate_reconcile_pending",
            "Reconciliations not settled yet (provider state not terminal), as last counted, by provider.",
            ["provider"],
            registry=r,
        )
        # policy snapshot and expected-order replica (shared/policy/holder.py, shared/orders.py)
        self.policy_version = Gauge(
            "callgate_policy_version", "Version of the policy snapshot this process decides with (0: none).", registry=r
        )
        self.policy_age_seconds = Gauge(
            "callgate_policy_age_seconds", "Seconds since the active policy snapshot was published.", registry=r
        )
        self.policy_reloads = Counter(
            "callgate_policy_reloads_total",
            "Policy loads by outcome (swapped, unchanged, failed).",
            ["outcome"],
            registry=r,
        )
        # policy shadow (shared/policy/shadow.py): rule = the rule behind the shadow's verdict
        self.policy_shadow_disagreements = Counter(
            "callgate_policy_shadow_disagreements_total",
            "Synchronous decisions the shadow policy version would have answered otherwise, by provider and rule.",
            ["provider", "rule"],
            registry=r,
        )
        self.orders_replica_lag_seconds = Histogram(
            "callgate_orders_replica_lag_seconds",
            "From an expected-order change being published to this process's replica applying it.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.orders_replica_size = Gauge(
            "callgate_orders_replica_orders", "Expected orders held in this process's replica.", registry=r
        )
        self.orders_replica_reloads = Counter(
            "callgate_orders_replica_reloads_total",
            "Full replica reloads, by cause (start, gap, poll, failed).",
            ["cause"],
            registry=r,
        )
        # notifications (workers/deliver.py)
        self.notification_deliveries = Counter(
            "callgate_notification_deliveries_total",
            "Delivery job runs by outcome (delivered, retry, dead, gone, disabled, deferred, early, stale, missing).",
            ["outcome"],
            registry=r,
        )
        self.notification_attempt_seconds = Histogram(
            "callgate_notification_attempt_duration_seconds",
            "Duration of one HTTP delivery attempt to a subscriber.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.notification_delivered_attempt = Histogram(
            "callgate_notification_delivered_attempt",
            "Attempt number on which a notification was delivered (1 = first try).",
            buckets=(1, 2, 3, 4, 5, 6, 7, 8),
            registry=r,
        )
        self.breaker_transitions = Counter(
            "callgate_notification_breaker_transitions_total",
            "Subscriber circuit breakers opened or closed by this process.",
            ["change"],
            registry=r,
        )
        self.dead_letters = Counter(
            "callgate_dead_letters_total", "Jobs given up and written to dead_letters, by job.", ["job"], registry=r
        )
        self.dead_letters_open = Gauge(
            "callgate_dead_letters_open",
            "Dead letters not replayed yet, by job, as last counted by this worker (workers/health.py).",
            ["job"],
            registry=r,
        )
        # risk checks (workers/risk.py)
        self.risk_findings = Counter(
            "callgate_risk_findings_total",
            "Risk findings on stored events, by check and severity (alert, freeze).",
            ["check", "severity"],
            registry=r,
        )
        self.risk_freezes = Counter(
            "callgate_risk_freezes_total", "Wallets frozen by a risk check, by check.", ["check"], registry=r
        )
        # <<< provider metrics
