"""Kargo's queue and verification rules over recorded facts (``policies/KARGO.md``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from policy_server.kargo._objects import ANALYSIS_TERMINAL_PHASES, PROMOTION_TERMINAL_PHASES


@dataclass(frozen=True, slots=True)
class PromotionFacts:
    """What decisions and the read API need of one Promotion."""

    namespace: str
    name: str
    stage: str
    freight: str | None
    phase: str
    queue_key: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    freight_collection: str | None
    abort_requested: bool

    @property
    def terminal(self) -> bool:
        """Succeeded, Failed, Errored or Aborted."""
        return self.phase in PROMOTION_TERMINAL_PHASES


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What decisions and the read API need of one AnalysisRun."""

    namespace: str
    name: str
    stage: str | None
    freight_collection: str | None
    promotion: str | None
    phase: str
    terminated: bool
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None

    @property
    def terminal(self) -> bool:
        """Whether the run has ended (its own phase; ``kargo._verification`` says what counts for L)."""
        return self.phase in ANALYSIS_TERMINAL_PHASES


def queue_order(promotions: Iterable[PromotionFacts]) -> list[PromotionFacts]:
    """Non-terminal Promotions in Kargo's order: Running first, then the rest oldest first (by ULID)."""
    pending = [p for p in promotions if not p.terminal]
    return sorted(pending, key=lambda p: (p.phase != "Running", p.queue_key, p.name))


def newest_succeeded(promotions: Iterable[PromotionFacts]) -> PromotionFacts | None:
    """L: the newest Succeeded Promotion, by queue order of names."""
    succeeded = [p for p in promotions if p.phase == "Succeeded"]
    return max(succeeded, key=lambda p: (p.queue_key, p.name), default=None)


def verifying_run(last: PromotionFacts | None, runs: Sequence[RunFacts]) -> RunFacts | None:
    """The run that verifies L: newest run of L's Stage and FreightCollection created at or after L finished.

    A run created before L finished belongs to an earlier Promotion of the same Freight, even when Kargo
    reuses it (Kargo #6372). ``runs`` may hold any runs of the namespace; the labels are checked here.
    """
    if last is None or last.freight_collection is None or last.finished_at is None:
        return None
    candidates = [
        r
        for r in runs
        if r.stage == last.stage
        and r.freight_collection == last.freight_collection
        and r.created_at is not None
        and r.created_at >= last.finished_at
    ]
    return max(candidates, key=lambda r: (r.created_at, r.name), default=None)
