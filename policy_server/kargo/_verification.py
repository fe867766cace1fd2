"""What counts as the verification of the Stage's newest Succeeded Promotion L.

Two sources of evidence (``policies/KARGO.md``):

- the AnalysisRun that verifies L (``verifying_run``: labelled with L's Stage and FreightCollection, created at or
  after L finished);
- Kargo's own record of it on the Stage, ``status.freightHistory[0].verificationHistory`` (newest first). It is
  the only evidence of a verification that ended in ``Error`` without any AnalysisRun (Rollouts integration off, a
  template error), and the only evidence that a user aborted a verification through Kargo: Kargo then records
  ``Failed`` / "Verification aborted by user" while the run itself reports ``Successful`` / "Run Terminated".

A record naming a run created before L finished is Kargo reusing the run of an earlier Promotion of the same
Freight (Kargo #6372): ``reused``, no evidence that L's deployment was verified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from policy_server.kargo._objects import ANALYSIS_TERMINAL_PHASES, name_ulid, parse_time, ulid_millis
from policy_server.kargo._view import PromotionFacts, RunFacts, verifying_run

ANNOTATION_REVERIFY = "kargo.akuity.io/reverify"
ANNOTATION_ACCEPT_VERIFICATION = "policy-server.dev/accept-verification"
"""Set on a Stage by a person: the verification (run name, or Kargo's record id when there is no run) whose
Inconclusive result they accept, so that the queue moves on without a reverify."""

USER_ABORT_MESSAGE = "Verification aborted by user"
# Kargo's record phases: Argo Rollouts' terminal phases, plus Aborted (newer Kargo versions).
RECORD_TERMINAL_PHASES = ANALYSIS_TERMINAL_PHASES | {"Aborted"}


@dataclass(frozen=True, slots=True)
class VerificationRecord:
    """One entry of Kargo's ``verificationHistory`` for the Stage's current Freight."""

    id: str | None
    phase: str
    message: str | None
    run: str | None
    """The AnalysisRun Kargo names (``analysisRun.name``), None when it started none."""
    run_phase: str | None
    actor: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.phase in RECORD_TERMINAL_PHASES

    @property
    def aborted_by_user(self) -> bool:
        """Kargo's own abort of a verification (the only abort that counts as a failed verification)."""
        return self.phase == "Aborted" or (self.phase == "Failed" and self.message == USER_ABORT_MESSAGE)


@dataclass(frozen=True, slots=True)
class KargoStage:
    """What a Stage object itself says (read from the recorded object at decision time)."""

    freight_collection: str | None
    """``status.freightHistory[0].id``: the Stage's current FreightCollection."""
    records: tuple[VerificationRecord, ...]
    """Its ``verificationHistory``, newest first."""
    last_promotion_phase: str | None
    """``status.lastPromotion.status.phase``."""
    reverify_requested: bool
    accepted_verification: str | None
    """The ``policy-server.dev/accept-verification`` annotation."""


@dataclass(frozen=True, slots=True)
class Verification:
    """L's verification as policies see it (``input.verification``)."""

    name: str | None
    """The AnalysisRun; None when Kargo recorded a verification without one."""
    phase: str
    """The run's own ``status.phase`` (Kargo's record phase when there is no run)."""
    effective_phase: str
    """What counts: Kargo's terminal verdict when it recorded one for this run, else the run's phase."""
    terminated: bool
    """``spec.terminate`` is set on the run (by Kargo's abort or by anyone else)."""
    aborted_by_user: bool
    """Kargo recorded its own abort of this verification (counts as Failed)."""
    awaiting_kargo: bool
    """The run was stopped and has ended, but Kargo has not recorded its verdict yet: only Kargo's record says
    whether this was a user's abort (Failed) or not."""
    source: str
    """``analysis-run`` or ``kargo`` (Kargo's record is the only evidence)."""
    message: str | None
    record_id: str | None
    freight_collection: str | None
    promotion: str | None
    created_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None

    @property
    def terminal(self) -> bool:
        return self.effective_phase in RECORD_TERMINAL_PHASES


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _record(entry: Mapping[str, Any]) -> VerificationRecord:
    run = entry.get("analysisRun")
    run = run if isinstance(run, dict) else {}
    return VerificationRecord(
        id=_text(entry.get("id")),
        phase=_text(entry.get("phase")) or "",
        message=_text(entry.get("message")),
        run=_text(run.get("name")),
        run_phase=_text(run.get("phase")),
        actor=_text(entry.get("actor")),
        started_at=_time(entry.get("startTime")),
        finished_at=_time(entry.get("finishTime")),
    )


def kargo_stage(raw: Mapping[str, Any]) -> KargoStage:
    """The Stage object's own account (tolerant: a field of an unexpected shape reads as absent)."""
    metadata = raw.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    annotations = annotations if isinstance(annotations, dict) else {}
    status = raw.get("status")
    status = status if isinstance(status, dict) else {}
    history = status.get("freightHistory")
    current = history[0] if isinstance(history, list) and history and isinstance(history[0], dict) else {}
    entries = current.get("verificationHistory")
    entries = entries if isinstance(entries, list) else []
    last = status.get("lastPromotion")
    last_status = last.get("status") if isinstance(last, dict) else None
    return KargoStage(
        freight_collection=_text(current.get("id")),
        records=tuple(_record(e) for e in entries if isinstance(e, dict)),
        last_promotion_phase=_text(last_status.get("phase")) if isinstance(last_status, dict) else None,
        reverify_requested=bool(annotations.get(ANNOTATION_REVERIFY)),
        accepted_verification=_text(annotations.get(ANNOTATION_ACCEPT_VERIFICATION)),
    )


def current_record(
    kargo: KargoStage | None, last: PromotionFacts | None, runs: Sequence[RunFacts]
) -> tuple[VerificationRecord | None, bool]:
    """Kargo's newest record of L's Freight, and whether it names a run created before L finished (reused)."""
    if kargo is None or last is None or not kargo.records:
        return None, False
    if last.freight_collection is None or kargo.freight_collection != last.freight_collection:
        return None, False
    record = kargo.records[0]
    reused = False
    if record.run is not None and last.finished_at is not None:
        created = run_created_at(record.run, runs)
        reused = created is not None and created < last.finished_at
    return record, reused


def run_created_at(name: str, runs: Sequence[RunFacts]) -> datetime | None:
    """When a run was created: as recorded, else from the ULID Kargo puts in the names of the runs it creates."""
    named = next((r for r in runs if r.name == name), None)
    if named is not None:
        return named.created_at
    ulid = name_ulid(name)
    return datetime.fromtimestamp(ulid_millis(ulid) / 1000, UTC) if ulid is not None else None


def verification_of(
    last: PromotionFacts | None, runs: Sequence[RunFacts], kargo: KargoStage | None
) -> Verification | None:
    """L's verification from the runs (any of the namespace) and Kargo's record; None when there is none yet."""
    run = verifying_run(last, runs)
    record, reused = current_record(kargo, last, runs)
    if run is not None:
        own = record if record is not None and record.run == run.name else None
        effective = run.phase
        awaiting = False
        completed_at = run.completed_at
        if own is not None and own.terminal:
            effective = "Failed" if own.phase == "Aborted" else own.phase
            completed_at = own.finished_at or run.completed_at
        elif run.terminated and run.phase in ANALYSIS_TERMINAL_PHASES and own is not None:
            awaiting = True
        return Verification(
            name=run.name,
            phase=run.phase,
            effective_phase=effective,
            terminated=run.terminated,
            aborted_by_user=own is not None and own.aborted_by_user,
            awaiting_kargo=awaiting,
            source="analysis-run",
            message=own.message if own is not None else None,
            record_id=own.id if own is not None else None,
            freight_collection=run.freight_collection,
            promotion=run.promotion,
            created_at=run.created_at,
            started_at=run.started_at,
            completed_at=completed_at,
        )
    if record is None or reused:
        return None
    if record.run is not None and any(r.name == record.run for r in runs):
        # A recorded run that does not verify L and is not reused: its labels name other Freight.
        return None
    return Verification(
        name=record.run,
        phase=record.phase,
        effective_phase="Failed" if record.phase == "Aborted" else record.phase,
        terminated=False,
        aborted_by_user=record.aborted_by_user,
        awaiting_kargo=False,
        source="kargo",
        message=record.message,
        record_id=record.id,
        freight_collection=kargo.freight_collection if kargo is not None else None,
        promotion=None,
        created_at=record.started_at,
        started_at=record.started_at,
        completed_at=record.finished_at,
    )
