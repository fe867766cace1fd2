"""Prometheus metrics of the service (``GET /metrics``); with several workers, multiprocess mode."""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

DECISIONS = Counter("policy_server_decisions_total", "Decisions answered, by outcome.", ["outcome"])
DECISION_REASONS = Counter(
    "policy_server_decision_reasons_total",
    "Reasons given in decisions, by kind, policy and code.",
    ["kind", "policy", "code"],
)
DECISION_SECONDS = Histogram(
    "policy_server_decision_duration_seconds", "Time to answer a decision, logging included.", buckets=_LATENCY
)
EVALUATION_SECONDS = Histogram(
    "policy_server_evaluation_duration_seconds",
    "Time the engine took for one policy set evaluation.",
    ["engine"],
    buckets=_LATENCY,
)
VERDICT_CACHE = Counter("policy_server_verdict_cache_total", "Verdict cache lookups, by result.", ["result"])
PRECOMPUTED = Counter(
    "policy_server_precomputed_verdicts_total",
    "Questions that found a verdict computed when their Stage changed: used, or stale (evaluated instead).",
    ["result"],
)
PRECOMPUTING = Counter(
    "policy_server_precompute_total",
    "Verdicts computed ahead of questions after a state change, by result.",
    ["result"],
)
INPUT_CACHE = Counter(
    "policy_server_input_reuse_total", "Decision inputs reused (state versions unchanged) or read again.", ["result"]
)
EVALUATION_FAILURES = Counter(
    "policy_server_evaluation_failures_total", "Policy evaluations that failed closed, by reason code.", ["code"]
)
ENGINE_RESTARTS = Counter(
    "policy_server_engine_worker_restarts_total", "Rego worker processes replaced after a failure."
)
ENGINE_RECYCLES = Counter(
    "policy_server_engine_worker_recycles_total", "Rego worker processes replaced because they grew large."
)
ENGINE_BUSY = Counter(
    "policy_server_engine_busy_total",
    "Requests that found no free Rego worker within their deadline, by pool (decisions, authoring).",
    ["pool"],
)
AUTHORING_REJECTED = Counter(
    "policy_server_authoring_rejected_total", "Authoring requests turned away because authoring capacity was full."
)
OPA_PUSHES = Counter("policy_server_opa_pushes_total", "Policy sets pushed to OPA servers, by result.", ["result"])
INGESTED = Counter("policy_server_ingested_objects_total", "Ingested items, by kind and result.", ["kind", "result"])
WATCH_EVENTS = Counter(
    "policy_server_watch_events_total",
    "Kubernetes watch events recorded, by kind and type (RECONCILED_DELETE: gone from a re-list; REFUSED: invalid).",
    ["kind", "type"],
)
WATCH_RELISTS = Counter(
    "policy_server_watch_lists_total",
    "Lists made by the watcher, by kind and why (list, gone: 410).",
    ["kind", "reason"],
)
LEADER = Gauge(
    "policy_server_enforcer_leader", "1 while this process holds the enforcer Lease.", multiprocess_mode="livemax"
)
ENFORCED = Counter(
    "policy_server_enforced_actions_total",
    "Actions the enforcer took on, by action and outcome (applied, already_done, dry_run, failed).",
    ["action", "outcome"],
)
WATCH_LAG = Histogram(
    "policy_server_watch_lag_seconds",
    "From an object's last change in the API server (managedFields time, whole seconds) to its recording.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
PRECOMPUTE_BACKLOG = Gauge(
    "policy_server_precompute_backlog",
    "Stages whose verdicts are waiting to be computed after a change, or being computed.",
    multiprocess_mode="livesum",
)
DECISION_LOG_BACKLOG = Gauge(
    "policy_server_decision_log_backlog",
    "Decision log writes in flight (each answer waits for its write to commit).",
    multiprocess_mode="livesum",
)


@functools.lru_cache(maxsize=4096)
def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: the lookup takes a lock and builds keys on every call."""
    return metric.labels(*labels)


# The web framework adds the charset to text/* itself: given twice, clients see it twice.
_MEDIA_TYPE = CONTENT_TYPE_LATEST.replace("; charset=utf-8", "")


def exposition() -> tuple[bytes, str]:
    """The metrics text and its media type (without charset): this process's registry, or every worker's in
    multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), _MEDIA_TYPE
    return generate_latest(), _MEDIA_TYPE
