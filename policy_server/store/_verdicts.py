"""Precomputed verdicts: written when a Stage's state changed, read by the next question about a Promotion."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, literal, or_, select, tuple_

from policy_server.store._db import Database
from policy_server.store._models import PrecomputedVerdictRow, StateVersionRow
from policy_server.store._types import PrecomputedVerdict
from policy_server.store._versions import FREIGHT_SCOPE, stage_scope

_V = PrecomputedVerdictRow.__table__
_S = StateVersionRow.__table__


def _now_version(scope: object) -> object:
    """The current state version of ``scope`` in the verdict's namespace (0: never moved)."""
    return func.coalesce(
        select(_S.c.version).where(_S.c.namespace == _V.c.namespace, _S.c.scope == scope).scalar_subquery(), 0
    )


# State versions only move on: a verdict computed at older ones can never answer again.
_OUTLIVED = or_(
    _V.c.stage_version < _now_version(literal(stage_scope("")) + _V.c.stage),
    _V.c.freight_version < _now_version(literal(FREIGHT_SCOPE)),
)


class VerdictStore:
    """Keeps the newest precomputed verdict per Promotion."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, verdicts: list[PrecomputedVerdict]) -> None:
        """Replace the verdicts of these Promotions, in one transaction."""
        if not verdicts:
            return
        keys = sorted({(v.namespace, v.promotion) for v in verdicts})
        latest = {(v.namespace, v.promotion): v for v in verdicts}
        async with self.db.write() as conn:
            await conn.execute(delete(_V).where(tuple_(_V.c.namespace, _V.c.promotion).in_(keys)))
            await conn.execute(insert(_V), [_row(latest[k]) for k in keys])

    async def get(self, namespace: str, promotion: str) -> PrecomputedVerdict | None:
        """The Promotion's precomputed verdict (valid or not)."""
        return await self.db.hot.precomputed(namespace, promotion)

    async def prune(self, before_ns: int, *, batch: int = 1000) -> int:
        """Forget verdicts computed before ``before_ns`` and those whose state has moved on since (a Promotion that
        started, ended or was deleted; a queue that changed): found in one read, deleted in small transactions;
        returns how many."""
        stale = or_(_V.c.computed_ns < before_ns, _OUTLIVED)
        async with self.db.read() as conn:
            keys = [tuple(row) for row in await conn.execute(select(_V.c.namespace, _V.c.promotion).where(stale))]
        removed = 0
        for start in range(0, len(keys), batch):
            # Checked again: a verdict saved since for the same Promotion is kept.
            gone = tuple_(_V.c.namespace, _V.c.promotion).in_(keys[start : start + batch]) & stale
            async with self.db.write() as conn:
                removed += (await conn.execute(delete(_V).where(gone))).rowcount
        return removed


def _row(v: PrecomputedVerdict) -> dict[str, object]:
    return {
        "namespace": v.namespace,
        "promotion": v.promotion,
        "stage": v.stage,
        "stage_version": v.versions[1],
        "freight_version": v.versions[2],
        "policy_version": v.policy_version,
        "bundle": v.bundle,
        "input_hash": v.input_hash,
        "verdict": v.verdict.decode(),
        "input_encoding": v.input_encoding,
        "input_body": v.input_body,
        "computed_ns": v.computed_ns,
        "expires_ns": v.expires_ns,
    }
