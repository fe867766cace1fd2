"""The reads a decision makes, through SQLAlchemy: portable, and the reference every fast path must equal."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from policy_server.kargo import (
    Kind,
    PromotionFacts,
    RunFacts,
    current_record,
    kargo_stage,
    newest_succeeded,
    queue_order,
    verification_of,
)
from policy_server.store._models import PolicySetRow, StageClaimRow
from policy_server.store._rows import PROMOTION_COLUMNS, RUN_COLUMNS, TABLES, promotion_facts, run_facts, stored
from policy_server.store._types import Claim, DecisionFacts, StageState
from policy_server.store._versions import read_versions

_STAGES = TABLES[Kind.STAGE]
_PROMOTIONS = TABLES[Kind.PROMOTION]
_RUNS = TABLES[Kind.ANALYSIS_RUN]
_FREIGHT = TABLES[Kind.FREIGHT]
_POLICY_SET = PolicySetRow.__table__


async def read_promotion(conn: AsyncConnection, namespace: str, name: str) -> PromotionFacts | None:
    """A live Promotion's facts."""
    p = _PROMOTIONS
    row = (
        await conn.execute(
            select(*[p.c[c] for c in PROMOTION_COLUMNS]).where(
                p.c.namespace == namespace, p.c.name == name, ~p.c.deleted
            )
        )
    ).first()
    return promotion_facts(row) if row is not None else None


async def read_stage_state(conn: AsyncConnection, namespace: str, name: str, recent: int) -> StageState | None:
    """One Stage's state (inside the caller's snapshot): its queue, recent history, verification run."""
    s, p, r = _STAGES, _PROMOTIONS, _RUNS
    stage_row = (
        await conn.execute(select(s).where(s.c.namespace == namespace, s.c.name == name, ~s.c.deleted))
    ).first()
    if stage_row is None:
        return None
    of_stage = and_(p.c.namespace == namespace, p.c.stage == name, ~p.c.deleted)
    cols = [p.c[c] for c in PROMOTION_COLUMNS]
    queue_rows = (await conn.execute(select(*cols).where(of_stage, ~p.c.terminal))).all()
    recent_rows = (
        await conn.execute(
            select(*cols).where(of_stage, p.c.terminal).order_by(p.c.queue_key.desc()).limit(max(recent, 0))
        )
    ).all()
    last_row = (
        await conn.execute(
            select(*cols).where(of_stage, p.c.phase == "Succeeded").order_by(p.c.queue_key.desc()).limit(1)
        )
    ).first()
    last = promotion_facts(last_row) if last_row is not None else None
    candidates: list[RunFacts] = []
    if stage_row.has_verification and last is not None and last.freight_collection and last.finished_at:
        run_rows = await conn.execute(
            select(*[r.c[c] for c in RUN_COLUMNS])
            .where(
                r.c.namespace == namespace,
                r.c.stage == name,
                r.c.freight_collection == last.freight_collection,
                r.c.created_at >= last.finished_at,
                ~r.c.deleted,
            )
            .order_by(r.c.created_at.desc(), r.c.name.desc())
            .limit(1)
        )
        candidates = [run_facts(row) for row in run_rows]
    return stage_state(
        stage_row,
        [promotion_facts(row) for row in queue_rows],
        [promotion_facts(row) for row in recent_rows],
        last,
        candidates,
    )


def stage_state(
    stage_row: Any,
    queue: list[PromotionFacts],
    recent: list[PromotionFacts],
    last: PromotionFacts | None,
    runs: list[RunFacts],
) -> StageState:
    """A Stage's state from what was read (every path reads the same and builds it here)."""
    stage = stored(Kind.STAGE, stage_row)
    kargo = kargo_stage(stage.object)
    last_succeeded = newest_succeeded([last] if last else [])
    verifies = bool(stage_row.has_verification)
    record, reused = current_record(kargo, last_succeeded, runs) if verifies else (None, False)
    return StageState(
        stage=stage,
        has_verification=verifies,
        health_status=stage_row.health_status,
        current_promotion=stage_row.current_promotion,
        last_promotion=stage_row.last_promotion,
        current_freight_collection=stage_row.current_freight_collection,
        queue=queue_order(queue),
        recent=recent,
        last_succeeded=last_succeeded,
        verification=verification_of(last_succeeded, runs, kargo) if verifies else None,
        kargo=kargo,
        kargo_record=(record, reused) if record is not None else None,
    )


def freight_names(state: StageState | None, promotion: PromotionFacts | None, freight: str | None) -> list[str]:
    """The Freight a decision reads: the queue's, the Promotion's, and the one asked about."""
    names = {p.freight for p in (state.queue if state else []) if p.freight}
    if promotion is not None and promotion.freight:
        names.add(promotion.freight)
    if freight:
        names.add(freight)
    return sorted(names)


async def read_freight(conn: AsyncConnection, namespace: str, names: list[str]) -> dict[str, dict[str, Any]]:
    """Live Freight objects by name."""
    if not names:
        return {}
    f = _FREIGHT
    rows = await conn.execute(
        select(f.c.name, f.c.object).where(f.c.namespace == namespace, f.c.name.in_(names), ~f.c.deleted)
    )
    return {row.name: msgspec.json.decode(row.object) for row in rows}


async def read_decision_facts(
    conn: AsyncConnection, namespace: str, promotion: str | None, stage: str | None, freight: str | None, recent: int
) -> DecisionFacts:
    """Everything a decision reads, inside the caller's snapshot."""
    p_facts = None
    if promotion is not None:
        p_facts = await read_promotion(conn, namespace, promotion)
        stage = p_facts.stage if p_facts is not None else None
    state = await read_stage_state(conn, namespace, stage, recent) if stage else None
    objects = await read_freight(conn, namespace, freight_names(state, p_facts, freight))
    versions = await read_versions(conn, namespace, stage) if stage else None
    policies = (await conn.execute(select(_POLICY_SET.c.version).where(_POLICY_SET.c.id == 1))).scalar_one_or_none()
    return DecisionFacts(p_facts, state, objects, versions, policies or 0)


_CLAIMS = StageClaimRow.__table__
CLAIM_QUERY = (
    select(_CLAIMS, _PROMOTIONS.c.phase)
    .select_from(
        _CLAIMS.outerjoin(
            _PROMOTIONS,
            and_(
                _PROMOTIONS.c.namespace == _CLAIMS.c.namespace,
                _PROMOTIONS.c.name == _CLAIMS.c.promotion,
                ~_PROMOTIONS.c.deleted,
            ),
        )
    )
    .where(_CLAIMS.c.namespace == bindparam("claim_ns"), _CLAIMS.c.stage == bindparam("claim_stage"))
)
"""A Stage's claim row with its holder's phase (bound with ``claim_params``); built once (building the
statement took longer than running it)."""


def claim_params(namespace: str, stage: str) -> dict[str, str]:
    return {"claim_ns": namespace, "claim_stage": stage}


def claim_of(row: Any) -> Claim:
    return Claim(row.promotion, row.decision_id, row.claimed_at, row.expires_at, row.phase)


async def read_claim(conn: AsyncConnection, namespace: str, stage: str) -> Claim | None:
    """The Stage's claim inside an open transaction."""
    row = (await conn.execute(CLAIM_QUERY, claim_params(namespace, stage))).first()
    return claim_of(row) if row is not None else None
