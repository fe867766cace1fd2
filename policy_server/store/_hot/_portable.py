"""The hot path through SQLAlchemy: works on every database the store supports; the parity reference."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection

from policy_server.store._models import PolicySetRow, PrecomputedVerdictRow
from policy_server.store._reads import CLAIM_QUERY, claim_of, claim_params, read_claim, read_decision_facts
from policy_server.store._rows import (
    DECISION_INPUTS,
    DECISION_REASONS,
    DECISIONS,
    PRECOMPUTED_COLUMNS,
    decision_row,
    fold_subject,
    input_row,
    reason_rows,
    verdict_of,
)
from policy_server.store._types import Claim, DecisionEntry, DecisionFacts, PrecomputedVerdict, Probe
from policy_server.store._versions import VERSIONS_QUERY, Versions, read_versions, versions_of, versions_params

if TYPE_CHECKING:
    from policy_server.store._db import Database

_D = DECISIONS
_ADD_REPEATS = (
    update(_D)
    .where(_D.c.id == bindparam("row"))
    .values(repeat_count=_D.c.repeat_count + bindparam("n"), last_at=bindparam("at"))
)
_POLICY_VERSION = select(PolicySetRow.__table__.c.version).where(PolicySetRow.__table__.c.id == 1)


class PortableHotPath:
    """SQLAlchemy statements in transactions; PostgreSQL serialises writers of one question by advisory lock."""

    name = "portable"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def decision_facts(
        self, namespace: str, promotion: str | None, stage: str | None, freight: str | None, recent: int
    ) -> DecisionFacts:
        async with self.db.read() as conn:
            return await read_decision_facts(conn, namespace, promotion, stage, freight, recent)

    async def versions(self, namespace: str, stage: str) -> Versions:
        rows = await self.db.fetch(VERSIONS_QUERY, versions_params(namespace, stage))
        return versions_of(stage, {r.scope: r.version for r in rows})

    async def current_claim(self, namespace: str, stage: str) -> Claim | None:
        rows = await self.db.fetch(CLAIM_QUERY, claim_params(namespace, stage))
        return claim_of(rows[0]) if rows else None

    async def probe(self, namespace: str, stage: str, promotion: str | None) -> Probe:
        async with self.db.read() as conn:
            versions = await read_versions(conn, namespace, stage)
            policies = (await conn.execute(_POLICY_VERSION)).scalar_one_or_none() or 0
            claim = await read_claim(conn, namespace, stage)
            subject = _D.c.promotion == promotion if promotion is not None else (_D.c.stage == stage) & _D.c.prospective
            last = (
                await conn.execute(
                    select(_D.c.id, _D.c.fold_key, _D.c.repeat_count)
                    .where(_D.c.namespace == namespace, subject)
                    .order_by(_D.c.id.desc())
                    .limit(1)
                )
            ).first()
            return Probe(versions, policies, claim, tuple(last) if last is not None else None)  # type: ignore[arg-type]

    async def precomputed(self, namespace: str, promotion: str) -> PrecomputedVerdict | None:
        table = PrecomputedVerdictRow.__table__
        rows = await self.db.fetch(
            select(*(table.c[c] for c in PRECOMPUTED_COLUMNS)).where(
                table.c.namespace == namespace, table.c.promotion == promotion
            )
        )
        return verdict_of(tuple(rows[0])) if rows else None

    async def record_decisions(self, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
        subjects = sorted({lock_subject(e) for e in entries})
        async with self.db.write() as conn:
            await self.db.lock(conn, [f"decisions/{s}" for s in subjects])
            return await record_batch(conn, entries)

    async def add_repeats(self, repeats: list[tuple[str, int, datetime]]) -> None:
        if repeats:
            async with self.db.write() as conn:
                await conn.execute(_ADD_REPEATS, [{"row": i, "n": n, "at": at} for i, n, at in repeats])

    async def close(self) -> None:
        return None


async def record_batch(conn: AsyncConnection, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
    """The batch in a handful of statements: one read of each question's last row, then bulk writes."""
    last = await _lasts(conn, entries)
    out: list[tuple[str, int]] = []
    rows: dict[str, dict[str, Any]] = {}
    inputs: list[dict[str, Any]] = []
    reasons: list[dict[str, Any]] = []
    bumps: dict[str, list[Any]] = {}  # existing row id -> [last_at, added repeats]
    for entry in entries:
        key = fold_subject(entry)
        current = last.get(key)
        if current is not None and current[1] == entry.fold_key:
            current[2] += 1
            if current[0] in rows:
                rows[current[0]].update(last_at=entry.evaluated_at, repeat_count=current[2])
            else:
                bump = bumps.setdefault(current[0], [entry.evaluated_at, 0])
                bump[0], bump[1] = entry.evaluated_at, bump[1] + 1
            out.append((current[0], current[2]))
            continue
        rows[entry.id] = decision_row(entry)
        inputs.append(input_row(entry))
        reasons += reason_rows(entry)
        last[key] = [entry.id, entry.fold_key, 1]
        out.append((entry.id, 1))
    if rows:
        await conn.execute(insert(_D), list(rows.values()))
        await conn.execute(insert(DECISION_INPUTS), inputs)
    if reasons:
        await conn.execute(insert(DECISION_REASONS), reasons)
    if bumps:
        await conn.execute(
            update(_D)
            .where(_D.c.id == bindparam("b_id"))
            .values(last_at=bindparam("b_at"), repeat_count=_D.c.repeat_count + bindparam("b_n")),
            [{"b_id": row_id, "b_at": at, "b_n": n} for row_id, (at, n) in bumps.items()],
        )
    return out


async def _lasts(conn: AsyncConnection, entries: list[DecisionEntry]) -> dict[tuple[Any, ...], list[Any]]:
    """Per question of the batch, its newest logged row: ``[id, fold_key, repeat_count]``."""
    queries = []
    seen: set[tuple[Any, ...]] = set()
    for entry in entries:
        key = fold_subject(entry)
        if key in seen:
            continue
        seen.add(key)
        if entry.promotion is not None:
            where = and_(_D.c.namespace == entry.namespace, _D.c.promotion == entry.promotion)
        else:
            where = and_(_D.c.namespace == entry.namespace, _D.c.stage == entry.stage, _D.c.prospective)
        newest = select(_D.c.id, _D.c.fold_key, _D.c.repeat_count, _D.c.namespace, _D.c.promotion, _D.c.stage)
        queries.append(select(newest.where(where).order_by(_D.c.id.desc()).limit(1).subquery()))
    found: dict[tuple[Any, ...], list[Any]] = {}
    for start in range(0, len(queries), 100):
        part = queries[start : start + 100]
        statement = part[0] if len(part) == 1 else union_all(*part)
        for row in await conn.execute(statement):
            key = (row.namespace, row.promotion) if row.promotion is not None else (row.namespace, None, row.stage)
            found[key] = [row.id, row.fold_key, row.repeat_count]
    return found


def lock_subject(entry: DecisionEntry) -> str:
    """The name of the lock that serialises the logging of one question."""
    asked = entry.promotion if entry.promotion is not None else f"(prospective)/{entry.stage}"
    return f"{entry.namespace}/{asked}"
