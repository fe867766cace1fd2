"""The decision log and start claims."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from ulid import ULID

from policy_server.store._db import Database
from policy_server.store._models import ActionOutcomeRow, StageClaimRow
from policy_server.store._reads import read_claim
from policy_server.store._rows import DECISION_INPUTS, DECISION_REASONS, DECISIONS, logged
from policy_server.store._types import ActionOutcome, Claim, DecisionEntry, DecisionFilter, LoggedDecision

_D = DECISIONS
_R = DECISION_REASONS
_C = StageClaimRow.__table__
_I = DECISION_INPUTS
_O = ActionOutcomeRow.__table__


class DecisionStore:
    """Writes and reads the decision log; holds start claims."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: DecisionEntry) -> tuple[str, int]:
        """Log one decision (see ``record_many``)."""
        return (await self.record_many([entry]))[0]

    async def record_many(self, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
        """Log decisions in one transaction, in order; an answer identical to the last one for the same
        question folds into it. Returns, per entry, the id of its row and that row's repeat count."""
        return await self.db.hot.record_decisions(entries)

    async def add_repeats(self, repeats: list[tuple[str, int, datetime]]) -> None:
        """Fold more answers into logged rows: (row id, how many, when the last was given) each."""
        await self.db.hot.add_repeats(repeats)

    async def claim(
        self, namespace: str, stage: str, promotion: str, decision_id: str, now: datetime, expires: datetime
    ) -> Claim | None:
        """Take the Stage's start claim for ``promotion`` unless another Promotion holds it.

        Returns None when the claim was taken (or renewed by its holder), else the claim that holds.
        """
        async with self.db.write() as conn:
            await self.db.lock(conn, [f"claim/{namespace}/{stage}"])
            current = await read_claim(conn, namespace, stage)
            if current is not None and current.promotion != promotion and current.live(now):
                return current
            values = {
                "promotion": promotion,
                "decision_id": decision_id,
                "claimed_at": now,
                "expires_at": expires,
            }
            if current is None:
                await conn.execute(insert(_C).values(namespace=namespace, stage=stage, **values))
            else:
                await conn.execute(update(_C).where(_C.c.namespace == namespace, _C.c.stage == stage).values(**values))
            return None

    async def current_claim(self, namespace: str, stage: str) -> Claim | None:
        """The Stage's claim row with its holder's phase (live or not)."""
        return await self.db.hot.current_claim(namespace, stage)

    async def get(self, decision_id: str) -> LoggedDecision | None:
        """One decision with its input."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(_D, _I.c.encoding, _I.c.body)
                    .select_from(_D.outerjoin(_I, _I.c.decision_id == _D.c.id))
                    .where(_D.c.id == decision_id)
                )
            ).first()
        return logged(row, with_input=True) if row is not None else None

    async def list(
        self, where: DecisionFilter, *, before: str | None = None, limit: int = 50, with_input: bool = False
    ) -> list[LoggedDecision]:
        """Decisions matching ``where``, newest first, older than the ``before`` id (the cursor)."""
        columns = [_D, _I.c.encoding, _I.c.body] if with_input else [_D]
        source: Any = _D.outerjoin(_I, _I.c.decision_id == _D.c.id) if with_input else _D
        order: Any = _D.c.id
        reasons_first = (where.policy is not None or where.code is not None) and self.db.walks_reason_index
        if reasons_first:
            # Walk the reason index (policy or code, decision id) newest first and stop at ``limit``; the
            # portable ``id IN (…)`` makes SQLite collect every matching id first (seconds at 1M rows).
            source = _R.join(source, _D.c.id == _R.c.decision_id)
            order = _R.c.decision_id
        query = select(*columns).select_from(source).where(*self._conditions(where, reasons_joined=reasons_first))
        if before is not None:
            query = query.where(order < before)
        if reasons_first:
            query = query.group_by(_R.c.decision_id)  # one row per decision (SQLite keeps the bare columns)
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(order.desc()).limit(limit))
            return [logged(r, with_input=with_input) for r in rows]

    async def export(self, where: DecisionFilter, *, batch: int = 500) -> AsyncIterator[LoggedDecision]:
        """Every matching decision with its input, newest first, read in batches."""
        before: str | None = None
        while True:
            page = await self.list(where, before=before, limit=batch, with_input=True)
            for decision in page:
                yield decision
            if len(page) < batch:
                return
            before = page[-1].id

    async def record_outcome(self, outcome: ActionOutcome) -> None:
        """Note what became of one of a decision's actions."""
        async with self.db.write() as conn:
            await conn.execute(
                insert(_O).values(
                    id=new_decision_id(outcome.at),
                    decision_id=outcome.decision_id,
                    namespace=outcome.namespace,
                    promotion=outcome.promotion,
                    action=outcome.action,
                    outcome=outcome.outcome,
                    detail=outcome.detail[:2000],
                    at=outcome.at,
                )
            )

    async def outcomes(self, decision_id: str) -> list[ActionOutcome]:
        """What became of a decision's actions, oldest first."""
        async with self.db.read() as conn:
            rows = await conn.execute(select(_O).where(_O.c.decision_id == decision_id).order_by(_O.c.id))
            return [
                ActionOutcome(r.decision_id, r.namespace, r.promotion, r.action, r.outcome, r.detail, r.at)
                for r in rows
            ]

    async def prune(self, older_than: datetime, *, batch: int = 1000) -> int:
        """Delete decisions last given before ``older_than``, in small transactions; returns how many."""
        removed = 0
        while True:
            async with self.db.write() as conn:
                ids = (
                    (await conn.execute(select(_D.c.id).where(_D.c.last_at < older_than).limit(batch))).scalars().all()
                )
                if not ids:
                    return removed
                await conn.execute(delete(_R).where(_R.c.decision_id.in_(ids)))
                await conn.execute(delete(_O).where(_O.c.decision_id.in_(ids)))
                await conn.execute(delete(_I).where(_I.c.decision_id.in_(ids)))
                await conn.execute(delete(_D).where(_D.c.id.in_(ids)))
                removed += len(ids)

    @staticmethod
    def _conditions(where: DecisionFilter, *, reasons_joined: bool = False) -> list[Any]:
        conditions: list[Any] = []
        if where.namespace is not None:
            conditions.append(_D.c.namespace == where.namespace)
        if where.namespaces is not None:
            conditions.append(_D.c.namespace.in_(where.namespaces))
        if where.stage is not None:
            conditions.append(_D.c.stage == where.stage)
        if where.promotion is not None:
            conditions.append(_D.c.promotion == where.promotion)
        if where.allow is not None:
            conditions.append(_D.c.allow == where.allow)
        if where.since is not None:
            conditions.append(_D.c.last_at >= where.since)
        if where.until is not None:
            conditions.append(_D.c.evaluated_at <= where.until)
            # Ids are ULIDs of the evaluation time: the same bound on the id lets the newest-first walk start
            # at ``until`` instead of at the newest row. The margin covers rows logged by versions that made
            # the id after evaluating (a few ms later than ``evaluated_at``).
            conditions.append(_D.c.id < ulid_floor(where.until + _ID_MARGIN))
        if where.policy is not None or where.code is not None:
            if reasons_joined:
                if where.policy is not None:
                    conditions.append(_R.c.policy == where.policy)
                if where.code is not None:
                    conditions.append(_R.c.code == where.code)
            else:
                reason = select(_R.c.decision_id)
                if where.policy is not None:
                    reason = reason.where(_R.c.policy == where.policy)
                if where.code is not None:
                    reason = reason.where(_R.c.code == where.code)
                conditions.append(_D.c.id.in_(reason))
        return conditions


_ID_MARGIN = timedelta(minutes=1)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
"""Two of Crockford's characters for each 10-bit value."""
_random = random.Random()  # seeded from os.urandom
os.register_at_fork(after_in_child=_random.seed)  # a forked process must not repeat its parent's ids


def new_decision_id(moment: datetime) -> str:
    """A ULID of ``moment`` (48 bits of milliseconds, 80 random bits): decision ids sort by evaluation time.
    Made here rather than by python-ulid (~30 µs of a repeated decision) or base64's pure-Python base32 (~8 µs),
    and without ``os.urandom``, whose system call hands the GIL to any waiting thread: a generator seeded from
    it (ids need to be unique, not secret)."""
    ms = max(0, min(int(moment.timestamp() * 1000), 2**48 - 1))
    rnd = _random.getrandbits(80)
    p = _PAIRS
    # 10 characters of time (50 bits, the top two zero), 16 of randomness: 5 and 8 pairs of 10 bits.
    time_part = p[ms >> 40] + p[ms >> 30 & 1023] + p[ms >> 20 & 1023] + p[ms >> 10 & 1023] + p[ms & 1023]
    return (
        time_part
        + p[rnd >> 70]
        + p[rnd >> 60 & 1023]
        + p[rnd >> 50 & 1023]
        + p[rnd >> 40 & 1023]
        + p[rnd >> 30 & 1023]
        + p[rnd >> 20 & 1023]
        + p[rnd >> 10 & 1023]
        + p[rnd & 1023]
    )


def ulid_floor(moment: datetime) -> str:
    """The smallest ULID of ``moment``'s millisecond: ids below it were made before that millisecond."""
    ms = max(0, min(int(moment.astimezone(UTC).timestamp() * 1000), 2**48 - 1))  # naive: as the store reads it
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + bytes(10)))
