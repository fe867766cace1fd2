"""Assembling the decision input document from recorded state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from policy_server.kargo import StageFacts, decision_input, freight_facts, prospective_promotion
from policy_server.store import DecisionFacts, StageState, StateStore


def stage_facts(state: StageState) -> StageFacts:
    """The Stage part of the input document, from the columns recorded at ingestion."""
    return StageFacts(
        namespace=state.stage.key.namespace,
        name=state.stage.key.name,
        has_verification=state.has_verification,
        health=state.health_status,
        current_promotion=state.current_promotion,
        last_promotion=state.last_promotion,
        current_freight_collection=state.current_freight_collection,
        last_promotion_phase=state.kargo.last_promotion_phase,
        reverify_requested=state.kargo.reverify_requested,
        accepted_verification=state.kargo.accepted_verification,
    )


def document_from_facts(
    facts: DecisionFacts,
    *,
    namespace: str,
    now: datetime,
    prospective_freight: str | None = None,
    prospective: bool = False,
    point: str = "start",
) -> dict[str, Any]:
    """The input document for P (or for a prospective Promotion of the Stage) from what the store returned, asked
    at ``point`` (``start``: may it start now; ``admission``: may it be created)."""
    state = facts.stage
    stage = stage_facts(state) if state is not None else None
    promotion = facts.promotion
    if prospective and stage is not None:
        promotion = prospective_promotion(stage, prospective_freight, now)
    return decision_input(
        namespace=namespace,
        now=now,
        promotion=promotion,
        stage=stage,
        queue=state.queue if state else (),
        recent=state.recent if state else (),
        last_succeeded=state.last_succeeded if state else None,
        verification=state.verification if state else None,
        kargo_record=state.kargo_record if state else None,
        freight={name: freight_facts(raw) for name, raw in facts.freight.items()},
        prospective=prospective and stage is not None,
        point=point,
    )


async def build_input(
    store: StateStore,
    namespace: str,
    now: datetime,
    *,
    promotion: str | None = None,
    stage: str | None = None,
    freight: str | None = None,
) -> tuple[DecisionFacts, dict[str, Any]]:
    """Read one consistent snapshot and build the document: by Promotion name, or prospective on a Stage."""
    facts = await store.decision_facts(namespace, promotion=promotion, stage=stage, freight=freight)
    document = document_from_facts(
        facts, namespace=namespace, now=now, prospective=promotion is None, prospective_freight=freight
    )
    return facts, document
