"""Every Prometheus metric of the daemon, on an explicit registry.

One `Metrics` object is built per process (a fresh one per test) and passed
to whoever records. Naming follows Prometheus practice: one prefix, base
units in the name, `_total` for counters (client_python appends it), label
values from small fixed sets only — never an id, a user name or a token.
Labelled series are initialised to 0 so alerts see them before the first event.
"""

from __future__ import annotations

import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector

from daemon import __version__

__all__ = (
    "API_AUTH_FAILURE_REASONS",
    "PREFIX",
    "PROVIDER_STATUS_CLASSES",
    "RECORD_OUTCOMES",
    "RETRY_REASONS",
    "RUN_STATUSES",
    "Metrics",
)

PREFIX = "customers_mngr"
RUN_STATUSES = ("ok", "partial", "failed")
RECORD_OUTCOMES = ("inserted", "updated", "unchanged", "rejected", "deleted", "restored")
PROVIDER_STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "error")
RETRY_REASONS = ("connection", "timeout", "status_5xx", "status_408", "status_429", "bad_body", "too_large")
ANOMALIES = ("card_luhn_failed", "card_unusual_length", "duplicate_id")
API_AUTH_FAILURE_REASONS = ("missing", "unknown", "forbidden", "demo_refused")
DB_ERROR_KINDS = ("unavailable", "timeout", "read_only", "integrity", "other")
ROLES = ("viewer", "analyst", "admin")
SENSITIVE_CLASSES = ("none", "pci:mask", "pci:full", "financial", "pii")

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_RUN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """The daemon's metrics; attributes are the prometheus_client objects."""

    def __init__(self, registry: CollectorRegistry | None = None, *, git_commit: str = "unknown") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r, p = self.registry, PREFIX
        self.build_info = Info(f"{p}_build", "Build of the running daemon", registry=r)
        self.build_info.info(
            {"version": __version__, "git_commit": git_commit, "python_version": platform.python_version()}
        )

        # The standard process_* series (start time, CPU, RSS, open fds): the stale-sync alert
        # and the dashboard's restart and memory panels read them.
        ProcessCollector(registry=r)

        # Sync
        self.sync_runs = Counter(f"{p}_sync_runs", "Sync runs by final status", ["status"], registry=r)
        self.sync_records = Counter(f"{p}_sync_records", "Provider records by outcome", ["outcome"], registry=r)
        self.sync_run_duration = Histogram(
            f"{p}_sync_run_duration_seconds", "Duration of a sync run", buckets=_RUN_BUCKETS, registry=r
        )
        self.sync_last_success = Gauge(
            f"{p}_sync_last_success_timestamp_seconds", "Unix time of the last ok or partial run", registry=r
        )
        self.sync_last_run = Gauge(f"{p}_sync_last_run_timestamp_seconds", "Unix time of the last run end", registry=r)
        self.sync_skipped = Counter(f"{p}_sync_skipped_runs", "Runs skipped because another replica leads", registry=r)
        self.sync_leader = Gauge(f"{p}_sync_leader", "1 while this process holds the writer lock", registry=r)
        self.sync_leader_changes = Counter(
            f"{p}_sync_leader_changes", "Times this process took or lost leadership", registry=r
        )
        self.sync_anomalies = Counter(f"{p}_sync_anomalies", "Kept records with an oddity", ["kind"], registry=r)
        self.sync_unknown_fields = Counter(
            f"{p}_sync_unknown_fields", "Unknown provider fields seen (ignored)", registry=r
        )
        self.provider_requests = Counter(
            f"{p}_provider_requests", "Provider HTTP requests by status class", ["status_class"], registry=r
        )
        self.provider_request_duration = Histogram(
            f"{p}_provider_request_duration_seconds", "Provider request duration", buckets=_DURATION_BUCKETS, registry=r
        )
        self.provider_retries = Counter(
            f"{p}_provider_retries", "Provider request retries by reason", ["reason"], registry=r
        )

        # API
        self.api_requests = Counter(
            f"{p}_api_requests",
            "API requests by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.api_request_duration = Histogram(
            f"{p}_api_request_duration_seconds",
            "API request duration by route template",
            ["route"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.api_in_flight = Gauge(f"{p}_api_requests_in_flight", "API requests being served", registry=r)
        # Refused by aiohttp's HTTP parser before any route matched (daemon.http.refused): not in
        # api_requests_total, which counts by route template.
        self.http_refused = Counter(
            f"{p}_http_requests_refused",
            "Requests the HTTP parser refused before routing, by status",
            ["status"],
            registry=r,
        )
        self.api_auth_failures = Counter(
            f"{p}_api_auth_failures", "Refused API requests by reason", ["reason"], registry=r
        )
        self.api_audit_events = Counter(
            f"{p}_api_audit_events",
            "Audit events by role and sensitive class revealed",
            ["role", "revealed"],
            registry=r,
        )

        # DB
        self.db_pool_size = Gauge(f"{p}_db_pool_connections", "Pool connections by state", ["state"], registry=r)
        self.db_acquire_wait = Histogram(
            f"{p}_db_pool_acquire_wait_seconds",
            "Time waited for a pool connection",
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter(f"{p}_db_query_errors", "DB query errors by kind", ["kind"], registry=r)

        # Supervisor
        self.actor_up = Gauge(f"{p}_actor_up", "1 while an actor runs", ["actor"], registry=r)
        self.actor_restarts = Counter(f"{p}_actor_restarts", "Actor restarts after a crash", ["actor"], registry=r)

        # Keys
        self.key_values = Gauge(f"{p}_encrypted_values", "Stored encrypted values by key id", ["key_id"], registry=r)
        self.decrypt_failures = Counter(f"{p}_decrypt_failures", "Values that failed to decrypt", registry=r)

        self._init_labels()

    def _init_labels(self) -> None:
        for status in RUN_STATUSES:
            self.sync_runs.labels(status=status)
        for outcome in RECORD_OUTCOMES:
            self.sync_records.labels(outcome=outcome)
        for kind in ANOMALIES:
            self.sync_anomalies.labels(kind=kind)
        for status_class in PROVIDER_STATUS_CLASSES:
            self.provider_requests.labels(status_class=status_class)
        for reason in RETRY_REASONS:
            self.provider_retries.labels(reason=reason)
        self.http_refused.labels(status="400")
        for reason in API_AUTH_FAILURE_REASONS:
            self.api_auth_failures.labels(reason=reason)
        for kind in DB_ERROR_KINDS:
            self.db_errors.labels(kind=kind)
        for state in ("total", "in_use", "free", "max"):
            self.db_pool_size.labels(state=state)
        for role in ROLES:
            for revealed in SENSITIVE_CLASSES:
                self.api_audit_events.labels(role=role, revealed=revealed)

    def init_actor(self, name: str) -> None:
        self.actor_up.labels(actor=name).set(0)
        self.actor_restarts.labels(actor=name)
