"""Service settings, read once from ``POLICY_SERVER_*`` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

_PREFIX = "POLICY_SERVER_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def _default_database_url(data_dir: str) -> str:
    return f"sqlite+aiosqlite:///{Path(data_dir).resolve() / 'policy-server.db'}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment."""

    host: str = "127.0.0.1"
    """Address to listen on (``POLICY_SERVER_HOST``)."""
    port: int = 8181
    """TCP port to listen on (``POLICY_SERVER_PORT``)."""
    data_dir: str = "data"
    """Directory of the embedded SQLite database (``POLICY_SERVER_DATA_DIR``)."""
    database_url: str = ""
    """SQLAlchemy URL of the store; empty means a SQLite file in ``data_dir`` (``POLICY_SERVER_DATABASE_URL``)."""
    auto_migrate: bool | None = None
    """Upgrade the schema at start-up; default: on for SQLite, off for PostgreSQL (``POLICY_SERVER_AUTO_MIGRATE``)."""
    db_pool_size: int = 20
    """Connections kept open per process (PostgreSQL) (``POLICY_SERVER_DB_POOL_SIZE``): more than the
    requests served at once, or connections are opened and closed under load."""
    db_max_overflow: int = 10
    """Extra connections a process may open under load (PostgreSQL) (``POLICY_SERVER_DB_MAX_OVERFLOW``)."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest accepted request body, in bytes; larger bodies get 413 (``POLICY_SERVER_MAX_BODY_BYTES``)."""
    max_ndjson_lines: int = 50_000
    """Most lines one NDJSON ingestion may carry; more is 413 (``POLICY_SERVER_MAX_NDJSON_LINES``)."""
    max_list_items: int = 50_000
    """Most objects one List (or one request) may carry; more is 413 (``POLICY_SERVER_MAX_LIST_ITEMS``)."""
    max_json_depth: int = 64
    """Deepest nesting of a JSON document; deeper is 422 (``POLICY_SERVER_MAX_JSON_DEPTH``)."""
    max_string_bytes: int = 1024 * 1024
    """Longest string value in a JSON document; longer is 422 (``POLICY_SERVER_MAX_STRING_BYTES``)."""
    max_policy_bytes: int = 512 * 1024
    """Largest policy (source plus tests); larger is 413 (``POLICY_SERVER_MAX_POLICY_BYTES``)."""
    max_input_bytes: int = 1024 * 1024
    """Largest decision input document: a larger /v1/evaluate input is 413, a larger assembled decision input
    is denied with ``decision_input_too_large`` (``POLICY_SERVER_MAX_INPUT_BYTES``)."""
    rate_limit_per_s: int = 200
    """Decision and ingestion requests per second per token, per replica (0: no limit)
    (``POLICY_SERVER_RATE_LIMIT_PER_S``)."""
    rate_limit_burst: int = 400
    """Requests a token may make at once before the rate applies (``POLICY_SERVER_RATE_LIMIT_BURST``)."""
    tls_cert_file: str = ""
    """Serve HTTPS with this certificate (PEM) and ``tls_key_file`` (``POLICY_SERVER_TLS_CERT_FILE``)."""
    tls_key_file: str = ""
    """The certificate's private key (PEM) (``POLICY_SERVER_TLS_KEY_FILE``)."""
    log_level: str = "INFO"
    """Log level of the service (``POLICY_SERVER_LOG_LEVEL``)."""
    log_format: Literal["json", "text"] = "json"
    """``json`` (one object per line) or ``text`` (``POLICY_SERVER_LOG_FORMAT``)."""
    recent_promotions: int = 10
    """How many terminal Promotions a Stage view lists by default (``POLICY_SERVER_RECENT_PROMOTIONS``)."""
    engine: Literal["regopy", "opa"] = "regopy"
    """Where decisions are evaluated: ``regopy`` (embedded, in worker processes) or ``opa``
    (``POLICY_SERVER_ENGINE``)."""
    opa_url: str = ""
    """OPA servers for ``engine=opa``, comma-separated (``POLICY_SERVER_OPA_URL``, e.g. http://127.0.0.1:8282)."""
    opa_binary: str = ""
    """An ``opa`` binary: when set, policy writes and tests also run ``opa check`` / ``opa test``, so authors see
    OPA's verdict next to regopy's, and a revision must pass both (``POLICY_SERVER_OPA_BINARY``)."""
    engine_workers: int = 0
    """Rego worker processes; 0 means one per CPU core, at most 4 (``POLICY_SERVER_ENGINE_WORKERS``)."""
    evaluation_timeout_ms: int = 2000
    """Deadline of one evaluation; past it the decision is denied with ``evaluation_timeout``
    (``POLICY_SERVER_EVALUATION_TIMEOUT_MS``)."""
    evaluation_queue_timeout_ms: int = 10_000
    """How long a decision waits for a free Rego worker when all are busy; past it the decision is denied with
    ``engine_busy`` (``POLICY_SERVER_EVALUATION_QUEUE_TIMEOUT_MS``)."""
    engine_memory_mb: int = 1024
    """Resident memory a Rego worker may reach before it is stopped (``POLICY_SERVER_ENGINE_MEMORY_MB``)."""
    engine_recycle_mb: int = 32
    """A Rego worker that grew by this much since its first answer (a safeguard: memory kept by the engine)
    is replaced between requests by a fresh fork (``POLICY_SERVER_ENGINE_RECYCLE_MB``; at most
    half of ``engine_memory_mb``)."""
    authoring_workers: int = 1
    """Rego worker processes for authoring (checks, tests, drafts, impact runs), apart from the decision
    workers and at a lower CPU priority: nothing an author submits can take a decision's worker
    (``POLICY_SERVER_AUTHORING_WORKERS``)."""
    authoring_timeout_ms: int = 10_000
    """Deadline of one authoring step (a check, a policy's tests) (``POLICY_SERVER_AUTHORING_TIMEOUT_MS``)."""
    authoring_queue: int = 4
    """Authoring requests that may wait for an authoring worker; more get 429 ``authoring_busy``
    (``POLICY_SERVER_AUTHORING_QUEUE``)."""
    authoring_rate_limit_per_s: float = 10
    """Policy writes, tests and evaluations per second per token and replica (0: no limit)
    (``POLICY_SERVER_AUTHORING_RATE_LIMIT_PER_S``)."""
    authoring_rate_limit_burst: int = 30
    """Authoring requests a token may make at once before that rate applies
    (``POLICY_SERVER_AUTHORING_RATE_LIMIT_BURST``)."""
    policy_refresh_ms: int = 1000
    """How often a replica checks the store for policy changes made elsewhere: the longest a replica answers
    with a replaced policy revision (``POLICY_SERVER_POLICY_REFRESH_MS``)."""
    policies_dir: str = ""
    """Built-in policies to load at start-up; empty means the ``policies/`` folder shipped with the code
    (``POLICY_SERVER_POLICIES_DIR``)."""
    auth: Literal["enabled", "disabled"] = "enabled"
    """``enabled``: every /v1 call needs a bearer token. ``disabled`` (local experiments only) lets anyone do
    anything, and says so loudly at every start (``POLICY_SERVER_AUTH``)."""
    bootstrap_token: str = ""
    """With no token in the store at start-up, an admin token with this secret is created; empty: a random
    one is created and printed once (``POLICY_SERVER_BOOTSTRAP_TOKEN``)."""
    claim_ttl_s: int = 120
    """How long a start claim holds unless its Promotion is seen Running or terminal first
    (``POLICY_SERVER_CLAIM_TTL_S``)."""
    decision_cache_ms: int = 1000
    """How long a verdict is reused for the same input when a policy reads the time (``now``); verdicts of
    policies that do not hold until the state or the policies change. 0 disables every reuse
    (``POLICY_SERVER_DECISION_CACHE_MS``)."""
    precompute: bool = True
    """Compute the verdicts on the first queued Promotions of a Stage when its recorded state changes
    (coalesced), so that the next question about them is answered without evaluating
    (``POLICY_SERVER_PRECOMPUTE``)."""
    precompute_depth: int = 2
    """How many of a changed Stage's queued Promotions, in queue order, get a verdict computed ahead: the one
    running or next to start and the one after it are what Kargo, the gate and the enforcer ask about; the rest
    change place with every change ahead of them (``POLICY_SERVER_PRECOMPUTE_DEPTH``)."""
    decision_cache_entries: int = 2000
    """Questions whose assembled inputs are kept for reuse while the state they were read from holds
    (a few kB each; ``POLICY_SERVER_DECISION_CACHE_ENTRIES``)."""
    decision_retention_hours: int = 168
    """Decisions last given longer ago are pruned in the background (``POLICY_SERVER_DECISION_RETENTION_HOURS``)."""
    prune_interval_s: int = 300
    """How often the pruning runs (``POLICY_SERVER_PRUNE_INTERVAL_S``)."""
    watch: bool = False
    """Watch Kargo state from the Kubernetes API in this server (``POLICY_SERVER_WATCH``; ``run --watch``)."""
    watch_namespaces: str = ""
    """Namespaces to watch, comma-separated; empty: every namespace labelled ``kargo.akuity.io/project=true``
    (``POLICY_SERVER_WATCH_NAMESPACES``; ``run --namespace``)."""
    enforce: Literal["off", "dry-run", "on"] = "dry-run"
    """With ``watch``: apply the abort actions of decisions to the cluster (``on``), only log what would be done
    (``dry-run``, the default: nothing in the cluster changes until an operator says so), or neither (``off``)
    (``POLICY_SERVER_ENFORCE``; ``run --enforce``)."""
    lease_namespace: str = ""
    """Where the enforcer's Lease lives (one replica enforces); empty: the pod's namespace, else ``default``
    (``POLICY_SERVER_LEASE_NAMESPACE``)."""
    kubeconfig: str = ""
    """The kubeconfig to use; empty: ``KUBECONFIG``, ``~/.kube/config``, or the pod's service account
    (``POLICY_SERVER_KUBECONFIG``)."""
    extra: dict[str, str] = field(default_factory=dict)
    """Unrecognised ``POLICY_SERVER_*`` variables, kept so that a typo can be reported."""

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for spec in fields(self):
            allowed = get_args(hints[spec.name]) if get_origin(hints[spec.name]) is Literal else ()
            if allowed and getattr(self, spec.name) not in allowed:
                variable = _PREFIX + spec.name.upper()
                raise SettingsError(f"{variable} must be one of {', '.join(allowed)}, got {getattr(self, spec.name)!r}")

    @property
    def namespaces_to_watch(self) -> tuple[str, ...] | None:
        """The namespaces given, or None for every Kargo project namespace."""
        names = tuple(n.strip() for n in self.watch_namespaces.split(",") if n.strip())
        return names or None

    @property
    def effective_database_url(self) -> str:
        """The database URL after defaults are applied."""
        return self.database_url or _default_database_url(self.data_dir)

    @property
    def is_sqlite(self) -> bool:
        """Whether the store is an SQLite file."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        """Whether ``run`` upgrades the schema by itself."""
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``environ`` (default: the process environment), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        hints = get_type_hints(cls)
        known = {f.name: hints[f.name] for f in fields(cls) if f.name != "extra"}
        extra: dict[str, str] = {}
        for key, raw in env.items():
            if not key.startswith(_PREFIX):
                continue
            name = key[len(_PREFIX) :].lower()
            spec = known.get(name)
            if spec is None:
                extra[key] = raw
                continue
            values[name] = _convert(key, raw, spec)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values, extra=extra)  # type: ignore[arg-type]


def _convert(key: str, raw: str, annotation: object) -> object:
    if get_origin(annotation) is Literal:
        allowed = get_args(annotation)
        if raw not in allowed:
            raise SettingsError(f"{key} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw
    text = getattr(annotation, "__name__", None) or str(annotation)
    if text.startswith("float"):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{key} must be a number, got {raw!r}") from None
    if text.startswith("int"):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{key} must be an integer, got {raw!r}") from None
    if text.startswith("bool"):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        if lowered == "" and "None" in text:
            return None
        raise SettingsError(f"{key} must be true or false, got {raw!r}")
    return raw
