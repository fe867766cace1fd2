"""Precomputed verdicts: written when a Stage's state changed, read by the next question about a Promotion."""

from __future__ import annotations

from sqlalchemy import delete, insert, tuple_

from policy_server.store._db import Database
from policy_server.store._models import PrecomputedVerdictRow
from policy_server.store._types import PrecomputedVerdict

_V = PrecomputedVerdictRow.__table__


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

    async def prune(self, before_ns: int) -> int:
        """Forget verdicts computed before ``before_ns``."""
        async with self.db.write() as conn:
            return (await conn.execute(delete(_V).where(_V.c.computed_ns < before_ns))).rowcount or 0


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
