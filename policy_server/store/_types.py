"""The store's value types: what its reads return and its writes take (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from policy_server.kargo import (
    PROMOTION_TERMINAL_PHASES,
    KargoStage,
    ObjectKey,
    PromotionFacts,
    Verification,
    VerificationRecord,
)


@dataclass(slots=True)
class ApplyResult:
    """What one ingestion did, item by item, counted."""

    applied: int = 0
    unchanged: int = 0
    stale: int = 0
    deleted: int = 0
    skipped: int = 0
    skipped_kinds: dict[str, int] = field(default_factory=dict)
    by_kind: dict[tuple[str, str], int] = field(default_factory=dict)
    """(kind, result) → count, for metrics."""

    def count(self, kind: str, outcome: str) -> None:
        """Count one item's outcome (applied, unchanged, stale, deleted, skipped)."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.by_kind[(kind, outcome)] = self.by_kind.get((kind, outcome), 0) + 1

    @property
    def total(self) -> int:
        """Items seen."""
        return self.applied + self.unchanged + self.stale + self.deleted + self.skipped


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One recorded object as read back."""

    key: ObjectKey
    resource_version: str | None
    deleted: bool
    created_at: datetime | None
    recorded_at: datetime
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StageState:
    """One Stage with its queue, recent history and the run that verifies its newest Succeeded Promotion."""

    stage: StoredObject
    has_verification: bool
    health_status: str | None
    current_promotion: str | None
    last_promotion: str | None
    current_freight_collection: str | None
    queue: list[PromotionFacts]
    recent: list[PromotionFacts]
    last_succeeded: PromotionFacts | None
    verification: Verification | None
    kargo: KargoStage
    """What the Stage object itself says: Kargo's verification records, last Promotion phase, annotations."""
    kargo_record: tuple[VerificationRecord, bool] | None
    """Kargo's newest record of L's Freight and whether it names a reused run (Kargo #6372)."""


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """What a decision reads: P (None when unknown or prospective), its Stage's state, and Freight objects."""

    promotion: PromotionFacts | None
    stage: StageState | None
    freight: dict[str, dict[str, Any]]
    versions: tuple[str, int, int] | None = None
    """(Stage, its state version, the namespace's Freight version) read with the facts; None without a Stage."""
    policies: int | None = None
    """The policy-set version read with the facts (the answer uses that set or a newer one)."""


@dataclass(frozen=True, slots=True)
class StageSummary:
    """A Stage in a listing."""

    namespace: str
    name: str
    resource_version: str | None
    has_verification: bool
    health_status: str | None
    current_promotion: str | None
    last_promotion: str | None
    queued: int


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """A decision to log."""

    id: str
    namespace: str
    stage: str | None
    promotion: str | None
    prospective: bool
    freight: str | None
    allow: bool
    claimed: bool
    evaluated_at: datetime
    fold_key: str
    input_hash: str
    duration_ms: float
    caller: str
    result: dict[str, Any]
    input: dict[str, Any]
    reasons: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, policy, code) for filtering: kind is deny, warn or dryrun."""
    stored_input: tuple[str, bytes] | None = None
    """``input`` already encoded as the log stores it (encoding, body), when the answer came with it."""


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """A decision as logged."""

    id: str
    namespace: str
    stage: str | None
    promotion: str | None
    prospective: bool
    freight: str | None
    allow: bool
    claimed: bool
    evaluated_at: datetime
    last_at: datetime
    repeat_count: int
    input_hash: str
    duration_ms: float
    caller: str
    result: dict[str, Any]
    input: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """What ``GET /v1/decisions`` narrows by; every field is optional."""

    namespace: str | None = None
    stage: str | None = None
    promotion: str | None = None
    allow: bool | None = None
    policy: str | None = None
    code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    namespaces: tuple[str, ...] | None = None
    """Only these namespaces (what a namespace-limited token may see)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A start claim as read with the Stage's state."""

    promotion: str
    decision_id: str
    claimed_at: datetime
    expires_at: datetime
    holder_phase: str | None
    """The claiming Promotion's phase now (None when it is gone)."""

    def live(self, now: datetime) -> bool:
        """Held: not expired, and the Promotion is not yet observed Running or terminal."""
        if self.expires_at <= now or self.holder_phase is None:
            return False
        return self.holder_phase != "Running" and self.holder_phase not in PROMOTION_TERMINAL_PHASES


@dataclass(frozen=True, slots=True)
class Probe:
    """What a repeated decision checks when its question arrives, read in one statement (one snapshot): the
    state versions of the Stage, the policy-set version, the Stage's start claim, and the question's last logged
    decision (a Promotion's, or the Stage's last prospective one)."""

    versions: tuple[str, int, int]
    policies: int
    claim: Claim | None
    last: tuple[str, str, int] | None = None
    """The question's last logged decision: (id, fold key, repeat count); an identical answer folds into it."""


@dataclass(frozen=True, slots=True)
class PrecomputedVerdict:
    """A verdict computed for a queued Promotion when its Stage's state changed (see ``PrecomputedVerdictRow``)."""

    namespace: str
    promotion: str
    stage: str
    versions: tuple[str, int, int]
    """(Stage, its state version, the namespace's Freight version) the input was read at."""
    policy_version: int
    bundle: str
    input_hash: str
    verdict: bytes
    """The verdict, JSON."""
    input_encoding: str
    input_body: bytes
    computed_ns: int
    expires_ns: int | None

    def holds(self, probe: Probe, bundle: str, now_ns: int) -> bool:
        """Whether it answers a question that found ``probe`` with the active ``bundle`` at ``now_ns``."""
        return (
            probe.versions == self.versions
            and probe.policies == self.policy_version
            and bundle == self.bundle
            and (self.expires_ns is None or now_ns < self.expires_ns)
        )


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """What became of one action of a decision: ``applied``, ``already_done``, ``dry_run`` or ``failed``."""

    decision_id: str
    namespace: str
    promotion: str
    action: str
    outcome: str
    detail: str
    at: datetime
