"""The decision input document: the compact facts policies see for "may Promotion P start?"."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policy_server.kargo._objects import format_time, parse_time, time_ns
from policy_server.kargo._verification import Verification, VerificationRecord
from policy_server.kargo._view import PromotionFacts

PROSPECTIVE_NAME = "(prospective)"
INPUT_VERSION = 1


@dataclass(frozen=True, slots=True)
class StageFacts:
    """What policies need of a Stage."""

    namespace: str
    name: str
    has_verification: bool
    health: str | None
    current_promotion: str | None
    last_promotion: str | None
    current_freight_collection: str | None
    last_promotion_phase: str | None = None
    reverify_requested: bool = False
    accepted_verification: str | None = None


def freight_facts(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A Freight object reduced to what policies read: alias, origin (``Warehouse/<name>``), creation time, and
    where it is verified, approved, current."""
    status = raw.get("status") or {}

    def stages(key: str) -> list[str]:
        value = status.get(key) or {}
        return sorted(value) if isinstance(value, dict) else []

    origin = raw.get("origin")
    origin = origin if isinstance(origin, dict) else {}
    metadata = raw.get("metadata")
    created = metadata.get("creationTimestamp") if isinstance(metadata, dict) else None
    try:
        created_ns = time_ns(parse_time(created)) if isinstance(created, str) else None
    except ValueError:
        created_ns = None
    kind, name = origin.get("kind"), origin.get("name")
    return {
        "alias": raw.get("alias"),
        "origin": f"{kind}/{name}" if isinstance(kind, str) and isinstance(name, str) else None,
        "created_at_ns": created_ns,
        "verified_in": stages("verifiedIn"),
        "approved_for": stages("approvedFor"),
        "currently_in": stages("currentlyIn"),
    }


def promotion_document(p: PromotionFacts, *, prospective: bool = False) -> dict[str, Any]:
    """One Promotion in the input document."""
    return {
        "name": p.name,
        "stage": p.stage,
        "freight": p.freight,
        "phase": p.phase,
        "terminal": p.terminal,
        "prospective": prospective,
        "queue_key": p.queue_key,
        "created_at": format_time(p.created_at),
        "created_at_ns": time_ns(p.created_at),
        "started_at_ns": time_ns(p.started_at),
        "finished_at_ns": time_ns(p.finished_at),
        "freight_collection": p.freight_collection,
        "abort_requested": p.abort_requested,
    }


def verification_document(v: Verification) -> dict[str, Any]:
    """L's verification in the input document."""
    return {
        "name": v.name,
        "phase": v.phase,
        "effective_phase": v.effective_phase,
        "terminal": v.terminal,
        "terminated": v.terminated,
        "aborted_by_user": v.aborted_by_user,
        "awaiting_kargo": v.awaiting_kargo,
        "source": v.source,
        "message": v.message,
        "record_id": v.record_id,
        "freight_collection": v.freight_collection,
        "promotion_annotation": v.promotion,
        "created_at_ns": time_ns(v.created_at),
        "started_at_ns": time_ns(v.started_at),
        "completed_at": format_time(v.completed_at),
        "completed_at_ns": time_ns(v.completed_at),
    }


def record_document(r: VerificationRecord, reused: bool) -> dict[str, Any]:
    """Kargo's newest record of L's Freight in the input document."""
    return {
        "id": r.id,
        "phase": r.phase,
        "message": r.message,
        "analysis_run": r.run,
        "analysis_run_phase": r.run_phase,
        "actor": r.actor,
        "started_at_ns": time_ns(r.started_at),
        "finished_at_ns": time_ns(r.finished_at),
        "reused": reused,
    }


def prospective_promotion(stage: StageFacts, freight: str | None, now: datetime) -> PromotionFacts:
    """A Promotion not created yet, judged as if appended to the Stage's queue now."""
    return PromotionFacts(
        namespace=stage.namespace,
        name=PROSPECTIVE_NAME,
        stage=stage.name,
        freight=freight,
        phase="",
        # Sorts after every ULID: the newest Promotion of the Stage.
        queue_key="~~prospective",
        # As Kubernetes will stamp it: whole seconds. Questions within a second are then the same question
        # (one evaluation, one folded log entry), as they are for Kargo.
        created_at=now.replace(microsecond=0),
        started_at=None,
        finished_at=None,
        freight_collection=None,
        abort_requested=False,
    )


def decision_input(
    *,
    namespace: str,
    now: datetime,
    promotion: PromotionFacts | None,
    stage: StageFacts | None,
    queue: Iterable[PromotionFacts] = (),
    recent: Iterable[PromotionFacts] = (),
    last_succeeded: PromotionFacts | None = None,
    verification: Verification | None = None,
    kargo_record: tuple[VerificationRecord, bool] | None = None,
    freight: Mapping[str, Mapping[str, Any]] | None = None,
    prospective: bool = False,
    point: str = "start",
) -> dict[str, Any]:
    """The input document (``policies/README.md`` describes every field; ``parameters`` is set per policy)."""
    promotions: dict[str, dict[str, Any]] = {}
    queue_names: list[str] = []
    for p in queue:
        promotions[p.name] = promotion_document(p)
        queue_names.append(p.name)
    for p in recent:
        promotions.setdefault(p.name, promotion_document(p))
    if last_succeeded is not None:
        promotions.setdefault(last_succeeded.name, promotion_document(last_succeeded))
    current = None
    if promotion is not None:
        current = promotion_document(promotion, prospective=prospective)
        promotions[promotion.name] = current
        if prospective:
            queue_names.append(promotion.name)
    return {
        "version": INPUT_VERSION,
        "point": point,
        "now": format_time(now),
        "now_ns": time_ns(now),
        "namespace": namespace,
        "promotion": current,
        "stage": None
        if stage is None
        else {
            "name": stage.name,
            "has_verification": stage.has_verification,
            "health": stage.health,
            "current_promotion": stage.current_promotion,
            "last_promotion": stage.last_promotion,
            "current_freight_collection": stage.current_freight_collection,
            "last_promotion_phase": stage.last_promotion_phase,
            "reverify_requested": stage.reverify_requested,
            "accepted_verification": stage.accepted_verification,
        },
        "queue": queue_names,
        "promotions": promotions,
        "last_succeeded": last_succeeded.name if last_succeeded is not None else None,
        "verification": verification_document(verification) if verification is not None else None,
        "kargo_verification": record_document(*kargo_record) if kargo_record is not None else None,
        "freight": {name: dict(facts) for name, facts in (freight or {}).items()},
        "parameters": {},
    }
