"""The decision log and start claims."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import and_, bindparam, delete, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from policy_server.kargo import PROMOTION_TERMINAL_PHASES
from policy_server.store._db import Database
from policy_server.store._direct import DirectSqlite, from_db_time, to_db_time
from policy_server.store._models import DecisionInputRow, DecisionReasonRow, DecisionRow, PromotionRow, StageClaimRow

_D = DecisionRow.__table__
_R = DecisionReasonRow.__table__
_C = StageClaimRow.__table__
_I = DecisionInputRow.__table__
_P = PromotionRow.__table__


@dataclass(frozen=True, slots=True)
class DecisionEntry:
    """A decision to log."""

    id: str
    namespace: str
    stage: str | None
    promotion: str | None
    prospective: bool
    freight: str | None
    allow: bool
    claimed: bool
    evaluated_at: datetime
    fold_key: str
    input_hash: str
    duration_ms: float
    caller: str
    result: dict[str, Any]
    input: dict[str, Any]
    reasons: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, policy, code) for filtering: kind is deny, warn or dryrun."""


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """A decision as logged."""

    id: str
    namespace: str
    stage: str | None
    promotion: str | None
    prospective: bool
    freight: str | None
    allow: bool
    claimed: bool
    evaluated_at: datetime
    last_at: datetime
    repeat_count: int
    input_hash: str
    duration_ms: float
    caller: str
    result: dict[str, Any]
    input: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """What ``GET /v1/decisions`` narrows by; every field is optional."""

    namespace: str | None = None
    stage: str | None = None
    promotion: str | None = None
    allow: bool | None = None
    policy: str | None = None
    code: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    namespaces: tuple[str, ...] | None = None
    """Only these namespaces (what a namespace-limited token may see)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A start claim as read with the Stage's state."""

    promotion: str
    decision_id: str
    claimed_at: datetime
    expires_at: datetime
    holder_phase: str | None
    """The claiming Promotion's phase now (None when it is gone)."""

    def live(self, now: datetime) -> bool:
        """Held: not expired, and the Promotion is not yet observed Running or terminal."""
        if self.expires_at <= now or self.holder_phase is None:
            return False
        return self.holder_phase != "Running" and self.holder_phase not in PROMOTION_TERMINAL_PHASES


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
        direct = self.db.direct
        if direct is not None:
            # One hop to a thread for the whole batch; the gate queues it with this process's other writers.
            async with self.db.write_gate:
                return await asyncio.to_thread(_direct_record_many, direct, entries)
        subjects = sorted({_subject(e) for e in entries})
        async with self.db.write() as conn:
            await self.db.lock(conn, [f"decisions/{s}" for s in subjects])
            return await self._record_batch(conn, entries)

    async def _record_batch(self, conn: AsyncConnection, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
        """The batch in a handful of statements: one read of each question's last row, then bulk writes."""
        last = await self._lasts(conn, entries)
        out: list[tuple[str, int]] = []
        rows: dict[str, dict[str, Any]] = {}
        inputs: list[dict[str, Any]] = []
        reasons: list[dict[str, Any]] = []
        bumps: dict[str, list[Any]] = {}  # existing row id -> [last_at, added repeats]
        for entry in entries:
            key = _fold_subject(entry)
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
            rows[entry.id] = _decision_row(entry)
            encoding, body = encode_input(entry.input)
            inputs.append({"decision_id": entry.id, "encoding": encoding, "body": body})
            reasons += [
                {"decision_id": entry.id, "position": i, "kind": kind, "policy": policy[:63], "code": code[:128]}
                for i, (kind, policy, code) in enumerate(entry.reasons)
            ]
            last[key] = [entry.id, entry.fold_key, 1]
            out.append((entry.id, 1))
        if rows:
            await conn.execute(insert(_D), list(rows.values()))
            await conn.execute(insert(_I), inputs)
        if reasons:
            await conn.execute(insert(_R), reasons)
        if bumps:
            await conn.execute(
                update(_D)
                .where(_D.c.id == bindparam("b_id"))
                .values(last_at=bindparam("b_at"), repeat_count=_D.c.repeat_count + bindparam("b_n")),
                [{"b_id": row_id, "b_at": at, "b_n": n} for row_id, (at, n) in bumps.items()],
            )
        return out

    async def _lasts(self, conn: AsyncConnection, entries: list[DecisionEntry]) -> dict[tuple[Any, ...], list[Any]]:
        """Per question of the batch, its newest logged row: ``[id, fold_key, repeat_count]``."""
        queries = []
        seen: set[tuple[Any, ...]] = set()
        for entry in entries:
            key = _fold_subject(entry)
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

    async def claim(
        self, namespace: str, stage: str, promotion: str, decision_id: str, now: datetime, expires: datetime
    ) -> Claim | None:
        """Take the Stage's start claim for ``promotion`` unless another Promotion holds it.

        Returns None when the claim was taken (or renewed by its holder), else the claim that holds.
        """
        async with self.db.write() as conn:
            await self.db.lock(conn, [f"claim/{namespace}/{stage}"])
            current = await self._claim(conn, namespace, stage)
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
        if self.db.direct is not None:
            rows = self.db.direct.fetch(_SQL_CLAIM, (namespace, stage))
            if not rows:
                return None
            promotion, decision_id, claimed_at, expires_at, phase = rows[0]
            return Claim(promotion, decision_id, from_db_time(claimed_at), from_db_time(expires_at), phase)  # type: ignore[arg-type]
        rows = await self.db.fetch(_CLAIM_QUERY, _claim_params(namespace, stage))
        return _claim_of(rows[0]) if rows else None

    @staticmethod
    async def _claim(conn: AsyncConnection, namespace: str, stage: str) -> Claim | None:
        row = (await conn.execute(_CLAIM_QUERY, _claim_params(namespace, stage))).first()
        return _claim_of(row) if row is not None else None

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
        return _logged(row, with_input=True) if row is not None else None

    async def list(
        self, where: DecisionFilter, *, before: str | None = None, limit: int = 50, with_input: bool = False
    ) -> list[LoggedDecision]:
        """Decisions matching ``where``, newest first, older than the ``before`` id (the cursor)."""
        columns = [_D, _I.c.encoding, _I.c.body] if with_input else [_D]
        source: Any = _D.outerjoin(_I, _I.c.decision_id == _D.c.id) if with_input else _D
        order: Any = _D.c.id
        reasons_first = (where.policy is not None or where.code is not None) and self.db.is_sqlite
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
            return [_logged(r, with_input=with_input) for r in rows]

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


def new_decision_id(moment: datetime) -> str:
    """A ULID of ``moment`` (48 bits of milliseconds, 80 random bits): decision ids sort by evaluation time.
    Made here rather than by python-ulid, which takes ~30 µs of a ~400 µs repeated decision."""
    ms = max(0, min(int(moment.astimezone(UTC).timestamp() * 1000), 2**48 - 1))
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def ulid_floor(moment: datetime) -> str:
    """The smallest ULID of ``moment``'s millisecond: ids below it were made before that millisecond."""
    ms = max(0, min(int(moment.astimezone(UTC).timestamp() * 1000), 2**48 - 1))  # naive: as the store reads it
    return str(ULID.from_bytes(ms.to_bytes(6, "big") + bytes(10)))


# Built once: building the statement took longer than running it (PostgreSQL path).
_CLAIM_QUERY = (
    select(_C, _P.c.phase)
    .select_from(_C.outerjoin(_P, and_(_P.c.namespace == _C.c.namespace, _P.c.name == _C.c.promotion, ~_P.c.deleted)))
    .where(_C.c.namespace == bindparam("claim_ns"), _C.c.stage == bindparam("claim_stage"))
)


def _claim_params(namespace: str, stage: str) -> dict[str, str]:
    return {"claim_ns": namespace, "claim_stage": stage}


def _claim_of(row: Any) -> Claim:
    return Claim(row.promotion, row.decision_id, row.claimed_at, row.expires_at, row.phase)


def _fold_subject(entry: DecisionEntry) -> tuple[Any, ...]:
    """The question a logged row answers: a Promotion, or a prospective one on a Stage."""
    return (entry.namespace, entry.promotion) if entry.promotion is not None else (entry.namespace, None, entry.stage)


def _decision_row(entry: DecisionEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "namespace": entry.namespace,
        "stage": entry.stage,
        "promotion": entry.promotion,
        "prospective": entry.prospective,
        "freight": entry.freight,
        "allow": entry.allow,
        "claimed": entry.claimed,
        "evaluated_at": entry.evaluated_at,
        "last_at": entry.evaluated_at,
        "repeat_count": 1,
        "fold_key": entry.fold_key,
        "input_hash": entry.input_hash,
        "duration_ms": entry.duration_ms,
        "caller": entry.caller[:253],
        "result": _json.encode(entry.result).decode(),
    }


def _subject(entry: DecisionEntry) -> str:
    asked = entry.promotion if entry.promotion is not None else f"(prospective)/{entry.stage}"
    return f"{entry.namespace}/{asked}"


def _logged(row: Any, *, with_input: bool) -> LoggedDecision:
    return LoggedDecision(
        id=row.id,
        namespace=row.namespace,
        stage=row.stage,
        promotion=row.promotion,
        prospective=bool(row.prospective),
        freight=row.freight,
        allow=bool(row.allow),
        claimed=bool(row.claimed),
        evaluated_at=row.evaluated_at,
        last_at=row.last_at,
        repeat_count=row.repeat_count,
        input_hash=row.input_hash,
        duration_ms=row.duration_ms,
        caller=row.caller,
        result=json.loads(row.result),
        input=decode_input(row.encoding, row.body) if with_input else None,
    )


def encode_input(document: dict[str, Any]) -> tuple[str, bytes]:
    """How an input document is stored: compressed JSON (a few kB become under one)."""
    return "zlib", zlib.compress(_json.encode(document), 3)


def decode_input(encoding: str | None, body: bytes | None) -> dict[str, Any] | None:
    """A stored input document back (None when it was never stored)."""
    if body is None:
        return None
    raw = zlib.decompress(body) if encoding == "zlib" else bytes(body)
    return msgspec.json.decode(raw)


# --- the decision log on SQLite, written directly (see _direct.py) ----------------------------------------

_SQL_CLAIM = (
    "SELECT c.promotion, c.decision_id, c.claimed_at, c.expires_at, p.phase FROM stage_claims AS c"
    " LEFT OUTER JOIN promotions AS p ON p.namespace = c.namespace AND p.name = c.promotion AND p.deleted = 0"
    " WHERE c.namespace = ? AND c.stage = ?"
)
_SQL_LAST_BY_PROMOTION = (
    "SELECT id, fold_key, repeat_count FROM decisions WHERE namespace = ? AND promotion = ? ORDER BY id DESC LIMIT 1"
)
_SQL_LAST_BY_STAGE = (
    "SELECT id, fold_key, repeat_count FROM decisions WHERE namespace = ? AND stage = ? AND prospective = 1"
    " ORDER BY id DESC LIMIT 1"
)
_SQL_FOLD = "UPDATE decisions SET last_at = ?, repeat_count = repeat_count + 1 WHERE id = ?"
_SQL_INSERT = (
    "INSERT INTO decisions (id, namespace, stage, promotion, prospective, freight, allow, claimed, evaluated_at,"
    " last_at, repeat_count, fold_key, input_hash, duration_ms, caller, result)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)"
)
_SQL_INPUT = "INSERT INTO decision_inputs (decision_id, encoding, body) VALUES (?, ?, ?)"
_SQL_REASON = "INSERT INTO decision_reasons (decision_id, position, kind, policy, code) VALUES (?, ?, ?, ?, ?)"
_json = msgspec.json.Encoder()


def _direct_record_many(direct: DirectSqlite, entries: list[DecisionEntry]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    with direct.write() as conn:
        for entry in entries:
            out.append(_direct_record(conn, entry))
    return out


def _direct_record(conn: sqlite3.Connection, entry: DecisionEntry) -> tuple[str, int]:
    if entry.promotion is not None:
        last = conn.execute(_SQL_LAST_BY_PROMOTION, (entry.namespace, entry.promotion)).fetchone()
    else:
        last = conn.execute(_SQL_LAST_BY_STAGE, (entry.namespace, entry.stage)).fetchone()
    at = to_db_time(entry.evaluated_at)
    if last is not None and last[1] == entry.fold_key:
        conn.execute(_SQL_FOLD, (at, last[0]))
        return last[0], last[2] + 1
    conn.execute(
        _SQL_INSERT,
        (
            entry.id, entry.namespace, entry.stage, entry.promotion, int(entry.prospective), entry.freight,
            int(entry.allow), int(entry.claimed), at, at, entry.fold_key, entry.input_hash, entry.duration_ms,
            entry.caller[:253], _json.encode(entry.result).decode(),
        ),
    )  # fmt: skip
    conn.execute(_SQL_INPUT, (entry.id, *encode_input(entry.input)))
    if entry.reasons:
        conn.executemany(
            _SQL_REASON,
            [(entry.id, i, kind, policy[:63], code[:128]) for i, (kind, policy, code) in enumerate(entry.reasons)],
        )
    return entry.id, 1
