"""Shapes of the Stage and Promotion read API."""

from __future__ import annotations

from typing import Any

import msgspec


class PromotionSummary(msgspec.Struct):
    """A Promotion in a Stage's queue or history."""

    name: str
    phase: str
    """Empty until Kargo first reconciles the Promotion."""
    freight: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    abort_requested: bool
    """The `kargo.akuity.io/abort` annotation is set."""


class VerificationRun(msgspec.Struct):
    """The verification of the newest Succeeded Promotion, as the built-in policies count it."""

    name: str | None
    """The AnalysisRun; null when Kargo recorded a verification without one (`source: kargo`)."""
    phase: str
    """The run's own `status.phase` (empty until Argo Rollouts reconciles it)."""
    effective_phase: str
    """What counts: Kargo's terminal verdict when it recorded one for this run (its abort of a verification is
    Failed, while the run says Successful), else the run's own phase."""
    terminated: bool
    """`spec.terminate` is set on the run."""
    aborted_by_user: bool
    """Kargo recorded its own abort of this verification."""
    awaiting_kargo: bool
    """The run was stopped and ended, and Kargo has not recorded its verdict yet."""
    source: str
    """`analysis-run`, or `kargo` when Kargo's record is the only evidence."""
    message: str | None
    freight_collection: str | None
    promotion_annotation: str | None
    """The `kargo.akuity.io/promotion` annotation: a hint that can name the wrong Promotion."""
    created_at: str | None
    started_at: str | None
    completed_at: str | None


class KargoVerificationRecord(msgspec.Struct):
    """What the Stage's own status says of its current Freight's newest verification."""

    id: str | None
    phase: str | None
    analysis_run: str | None
    reused: bool
    """It names a run created before the newest Succeeded Promotion finished (Kargo #6372)."""
    start_time: str | None
    finish_time: str | None
    message: str | None


class CurrentFreight(msgspec.Struct):
    """The Freight the Stage runs now: `status.freightHistory[0]`."""

    collection_id: str | None
    freight: list[str]
    """Freight names in the collection."""
    kargo_verification: KargoVerificationRecord | None


class NamespaceView(msgspec.Struct):
    """A namespace (Kargo project) with recorded Stages."""

    name: str
    stages: int


class StageSummaryView(msgspec.Struct):
    """A Stage in a listing."""

    namespace: str
    name: str
    resource_version: str | None
    has_verification: bool
    health: str | None
    current_promotion: str | None
    last_promotion: str | None
    queued: int
    """Non-terminal Promotions of the Stage."""


class StageView(msgspec.Struct):
    """One Stage: its queue in Kargo's order, recent history, current Freight and verification."""

    namespace: str
    name: str
    resource_version: str | None
    has_verification: bool
    """`spec.verification` is set."""
    health: str | None
    """`status.health.status`."""
    current_promotion: str | None
    """`status.currentPromotion.name`: the Promotion Kargo has let start."""
    last_promotion: str | None
    """`status.lastPromotion.name`: the newest terminal Promotion of any phase."""
    queue: list[PromotionSummary]
    """Non-terminal Promotions: Running first, then oldest first by the ULID in their names."""
    recent_promotions: list[PromotionSummary]
    """Terminal Promotions, newest first."""
    last_succeeded_promotion: PromotionSummary | None
    current_freight: CurrentFreight | None
    current_verification: VerificationRun | None
    """The newest run of the last Succeeded Promotion's Freight created at or after it finished, with Kargo's
    record of it; or Kargo's record alone when it verified without a run."""
    conditions: list[dict[str, Any]]


class PromotionView(msgspec.Struct):
    """One Promotion, where it stands in its Stage's queue, and the object as served."""

    namespace: str
    name: str
    stage: str
    phase: str
    freight: str | None
    terminal: bool
    queue_position: int | None
    """0 for the head of the Stage's queue; null when the Promotion is terminal or its Stage is unknown."""
    ahead: list[str]
    """Promotions before this one in the queue."""
    resource_version: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    abort_requested: bool
    object: dict[str, Any]
