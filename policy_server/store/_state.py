"""Recorded Kargo state: applying objects and watch events, and reading one Stage's state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Table, and_, bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from policy_server.kargo import (
    Action,
    Item,
    KargoObject,
    Kind,
    ObjectKey,
    PromotionFacts,
    RunFacts,
    is_newer,
    newest_succeeded,
    queue_order,
    verifying_run,
)
from policy_server.store._db import Database
from policy_server.store._direct import from_db_time, to_db_time
from policy_server.store._models import AnalysisRunRow, FreightRow, PromotionRow, StageRow, StateVersionRow

TABLES: dict[Kind, Table] = {
    Kind.STAGE: StageRow.__table__,  # type: ignore[dict-item]
    Kind.PROMOTION: PromotionRow.__table__,  # type: ignore[dict-item]
    Kind.FREIGHT: FreightRow.__table__,  # type: ignore[dict-item]
    Kind.ANALYSIS_RUN: AnalysisRunRow.__table__,  # type: ignore[dict-item]
}
_CHUNK = 400
_PROMOTION_COLUMNS = (
    "namespace",
    "name",
    "stage",
    "freight",
    "phase",
    "queue_key",
    "created_at",
    "started_at",
    "finished_at",
    "freight_collection",
    "abort_requested",
)
_RUN_COLUMNS = (
    "namespace",
    "name",
    "stage",
    "freight_collection",
    "promotion",
    "phase",
    "terminated",
    "created_at",
    "started_at",
    "completed_at",
)


@dataclass(slots=True)
class ApplyResult:
    """What one ingestion did, item by item, counted."""

    applied: int = 0
    unchanged: int = 0
    stale: int = 0
    deleted: int = 0
    skipped: int = 0
    skipped_kinds: dict[str, int] = field(default_factory=dict)
    by_kind: dict[tuple[str, str], int] = field(default_factory=dict)
    """(kind, result) → count, for metrics."""

    def count(self, kind: str, outcome: str) -> None:
        """Count one item's outcome (applied, unchanged, stale, deleted, skipped)."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.by_kind[(kind, outcome)] = self.by_kind.get((kind, outcome), 0) + 1

    @property
    def total(self) -> int:
        """Items seen."""
        return self.applied + self.unchanged + self.stale + self.deleted + self.skipped


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One recorded object as read back."""

    key: ObjectKey
    resource_version: str | None
    deleted: bool
    created_at: datetime | None
    recorded_at: datetime
    object: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StageState:
    """One Stage with its queue, recent history and the run that verifies its newest Succeeded Promotion."""

    stage: StoredObject
    has_verification: bool
    health_status: str | None
    current_promotion: str | None
    last_promotion: str | None
    current_freight_collection: str | None
    queue: list[PromotionFacts]
    recent: list[PromotionFacts]
    last_succeeded: PromotionFacts | None
    verification: RunFacts | None


@dataclass(frozen=True, slots=True)
class DecisionFacts:
    """What a decision reads: P (None when unknown or prospective), its Stage's state, and Freight objects."""

    promotion: PromotionFacts | None
    stage: StageState | None
    freight: dict[str, dict[str, Any]]
    versions: tuple[str, int, int] | None = None
    """(Stage, its state version, the namespace's Freight version) read with the facts; None without a Stage."""


@dataclass(frozen=True, slots=True)
class StageSummary:
    """A Stage in a listing."""

    namespace: str
    name: str
    resource_version: str | None
    has_verification: bool
    health_status: str | None
    current_promotion: str | None
    last_promotion: str | None
    queued: int


@dataclass(slots=True)
class _Current:
    resource_version: str | None
    deleted: bool
    exists: bool
    obj: KargoObject | None = None
    dirty: bool = False
    old_stage: str | None = None
    """The Stage the recorded row belonged to (Promotions, AnalysisRuns)."""


class StateStore:
    """Reads and writes recorded Kargo state."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- writes ---------------------------------------------------------------------------------

    async def apply(self, items: Sequence[Item]) -> ApplyResult:
        """Apply items in order, in one transaction; an older resourceVersion never overwrites a newer one."""
        result = ApplyResult()
        keys = sorted({i.obj.key for i in items if i.obj is not None}, key=_key_order)
        async with self.db.write() as conn:
            await self._lock(conn, keys)
            current = await self._load(conn, keys)
            for item in items:
                self._step(item, current, result)
            await self._write(conn, current)
        return result

    async def delete(self, key: ObjectKey, resource_version: str | None = None) -> bool:
        """Record that an object was deleted (a tombstone); False when it is not recorded."""
        async with self.db.write() as conn:
            await self._lock(conn, [key])
            table = TABLES[key.kind]
            stage = table.c.stage if "stage" in table.c else None
            row = (
                await conn.execute(
                    select(table.c.resource_version, table.c.deleted, *([stage] if stage is not None else [])).where(
                        table.c.namespace == key.namespace, table.c.name == key.name
                    )
                )
            ).first()
            if row is None or row.deleted:
                return False
            await bump_versions(conn, _scopes(key, None, row[2] if stage is not None else None))
            rv = resource_version or row.resource_version
            await conn.execute(
                update(table)
                .where(table.c.namespace == key.namespace, table.c.name == key.name)
                .values(deleted=True, resource_version=rv, recorded_at=_now())
            )
            return True

    async def _lock(self, conn: AsyncConnection, keys: Sequence[ObjectKey]) -> None:
        # One lock per object, so that concurrent requests for the same object take turns.
        await self.db.lock(conn, [f"{k.kind.value}/{k.namespace}/{k.name}" for k in keys])

    async def _load(self, conn: AsyncConnection, keys: Sequence[ObjectKey]) -> dict[ObjectKey, _Current]:
        current: dict[ObjectKey, _Current] = {k: _Current(None, False, False) for k in keys}
        by_kind: dict[Kind, list[ObjectKey]] = {}
        for key in keys:
            by_kind.setdefault(key.kind, []).append(key)
        for kind, kind_keys in by_kind.items():
            table = TABLES[kind]
            stage = table.c.stage if "stage" in table.c else None
            columns = [table.c.namespace, table.c.name, table.c.resource_version, table.c.deleted]
            for start in range(0, len(kind_keys), _CHUNK):
                chunk = kind_keys[start : start + _CHUNK]
                rows = await conn.execute(
                    select(*columns, *([stage] if stage is not None else [])).where(
                        tuple_(table.c.namespace, table.c.name).in_([(k.namespace, k.name) for k in chunk])
                    )
                )
                for row in rows:
                    current[ObjectKey(kind, row.namespace, row.name)] = _Current(
                        row.resource_version, bool(row.deleted), True, old_stage=row[4] if stage is not None else None
                    )
        return current

    @staticmethod
    def _step(item: Item, current: dict[ObjectKey, _Current], result: ApplyResult) -> None:
        if item.action is Action.SKIP or item.obj is None:
            result.count(item.skipped_kind or "unknown", "skipped")
            if item.skipped_kind:
                result.skipped_kinds[item.skipped_kind] = result.skipped_kinds.get(item.skipped_kind, 0) + 1
            return
        obj = item.obj
        kind = obj.key.kind.value
        state = current[obj.key]
        known = state.exists or state.dirty
        newer = is_newer(obj.resource_version, state.resource_version) if known else True
        if item.action is Action.APPLY:
            if newer is None:
                # The same version again: a replay, or (when deleted) the version that was deleted.
                if state.deleted:
                    result.count(kind, "stale")
                else:
                    result.count(kind, "unchanged")
                return
            if newer is False:
                result.count(kind, "stale")
                return
            state.deleted = False
            result.count(kind, "applied")
        else:
            if newer is False or (newer is None and state.deleted):
                if state.deleted:
                    result.count(kind, "unchanged")
                else:
                    result.count(kind, "stale")
                return
            state.deleted = True
            result.count(kind, "deleted")
        state.resource_version = obj.resource_version
        state.obj = obj
        state.dirty = True

    async def _write(self, conn: AsyncConnection, current: dict[ObjectKey, _Current]) -> None:
        now = _now()
        inserts: dict[Kind, list[dict[str, Any]]] = {}
        updates: dict[Kind, list[dict[str, Any]]] = {}
        scopes: set[tuple[str, str]] = set()
        for key, state in current.items():
            if not state.dirty or state.obj is None:
                continue
            row = _row(state.obj, state.deleted, now)
            (updates if state.exists else inserts).setdefault(key.kind, []).append(row)
            scopes.update(_scopes(key, state.obj.columns.get("stage"), state.old_stage))
        await bump_versions(conn, scopes)
        for kind, rows in inserts.items():
            await conn.execute(insert(TABLES[kind]), rows)
        for kind, rows in updates.items():
            table = TABLES[kind]
            columns = [c for c in rows[0] if c not in ("namespace", "name")]
            stmt = (
                update(table)
                .where(table.c.namespace == bindparam("b_namespace"), table.c.name == bindparam("b_name"))
                .values({c: bindparam(f"b_{c}") for c in columns})
            )
            await conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in rows])

    # --- reads ----------------------------------------------------------------------------------

    async def get(self, key: ObjectKey, *, include_deleted: bool = False) -> StoredObject | None:
        """One recorded object, or None."""
        table = TABLES[key.kind]
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(table).where(table.c.namespace == key.namespace, table.c.name == key.name))
            ).first()
        if row is None or (row.deleted and not include_deleted):
            return None
        return _stored(key.kind, row)

    async def promotion(self, namespace: str, name: str) -> tuple[StoredObject, PromotionFacts] | None:
        """A Promotion with its facts, or None."""
        table = TABLES[Kind.PROMOTION]
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(table).where(table.c.namespace == namespace, table.c.name == name, ~table.c.deleted)
                )
            ).first()
        if row is None:
            return None
        return _stored(Kind.PROMOTION, row), _promotion_facts(row)

    async def namespaces(self, visible: frozenset[str] | None = None) -> list[tuple[str, int]]:
        """Namespaces (Kargo projects) with recorded Stages, by name, with how many; only ``visible`` ones."""
        stages = TABLES[Kind.STAGE]
        query = select(stages.c.namespace, func.count()).where(~stages.c.deleted)
        if visible is not None:
            query = query.where(stages.c.namespace.in_(sorted(visible)))
        async with self.db.read() as conn:
            rows = await conn.execute(query.group_by(stages.c.namespace).order_by(stages.c.namespace))
            return [(namespace, count) for namespace, count in rows]

    async def list_stages(self, namespace: str) -> list[StageSummary]:
        """Every Stage of a namespace, by name, with the length of its queue."""
        stages = TABLES[Kind.STAGE]
        promotions = TABLES[Kind.PROMOTION]
        queued = (
            select(func.count())
            .where(
                promotions.c.namespace == stages.c.namespace,
                promotions.c.stage == stages.c.name,
                ~promotions.c.terminal,
                ~promotions.c.deleted,
            )
            .scalar_subquery()
        )
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    stages.c.namespace,
                    stages.c.name,
                    stages.c.resource_version,
                    stages.c.has_verification,
                    stages.c.health_status,
                    stages.c.current_promotion,
                    stages.c.last_promotion,
                    queued.label("queued"),
                )
                .where(stages.c.namespace == namespace, ~stages.c.deleted)
                .order_by(stages.c.name)
            )
            return [StageSummary(**row._asdict()) for row in rows]

    async def stage_state(self, namespace: str, name: str, *, recent: int = 10) -> StageState | None:
        """One Stage's state from one snapshot: indexed reads of the Stage, its Promotions and runs."""
        async with self.db.read() as conn:
            return await self._stage_state(conn, namespace, name, recent)

    async def _stage_state(self, conn: AsyncConnection, namespace: str, name: str, recent: int) -> StageState | None:
        stages = TABLES[Kind.STAGE]
        promotions = TABLES[Kind.PROMOTION]
        runs = TABLES[Kind.ANALYSIS_RUN]
        stage_row = (
            await conn.execute(
                select(stages).where(stages.c.namespace == namespace, stages.c.name == name, ~stages.c.deleted)
            )
        ).first()
        if stage_row is None:
            return None
        of_stage = and_(promotions.c.namespace == namespace, promotions.c.stage == name, ~promotions.c.deleted)
        cols = [promotions.c[c] for c in _PROMOTION_COLUMNS]
        queue_rows = (await conn.execute(select(*cols).where(of_stage, ~promotions.c.terminal))).all()
        recent_rows = (
            await conn.execute(
                select(*cols)
                .where(of_stage, promotions.c.terminal)
                .order_by(promotions.c.queue_key.desc())
                .limit(max(recent, 0))
            )
        ).all()
        last_row = (
            await conn.execute(
                select(*cols)
                .where(of_stage, promotions.c.phase == "Succeeded")
                .order_by(promotions.c.queue_key.desc())
                .limit(1)
            )
        ).first()
        last = _promotion_facts(last_row) if last_row is not None else None
        candidates: list[RunFacts] = []
        if stage_row.has_verification and last is not None and last.freight_collection and last.finished_at:
            run_rows = await conn.execute(
                select(*[runs.c[c] for c in _RUN_COLUMNS])
                .where(
                    runs.c.namespace == namespace,
                    runs.c.stage == name,
                    runs.c.freight_collection == last.freight_collection,
                    runs.c.created_at >= last.finished_at,
                    ~runs.c.deleted,
                )
                .order_by(runs.c.created_at.desc(), runs.c.name.desc())
                .limit(1)
            )
            candidates = [_run_facts(r) for r in run_rows]
        return StageState(
            stage=_stored(Kind.STAGE, stage_row),
            has_verification=bool(stage_row.has_verification),
            health_status=stage_row.health_status,
            current_promotion=stage_row.current_promotion,
            last_promotion=stage_row.last_promotion,
            current_freight_collection=stage_row.current_freight_collection,
            queue=queue_order(_promotion_facts(r) for r in queue_rows),
            recent=[_promotion_facts(r) for r in recent_rows],
            last_succeeded=newest_succeeded([last] if last else []),
            verification=verifying_run(last, candidates) if stage_row.has_verification else None,
        )

    async def decision_facts(
        self,
        namespace: str,
        *,
        promotion: str | None = None,
        stage: str | None = None,
        freight: str | None = None,
        recent: int = 10,
    ) -> DecisionFacts:
        """Everything a decision reads, from one snapshot: P (by name) or a Stage, and that Stage's state."""
        if self.db.direct is not None:
            with self.db.direct.read() as conn:
                return _direct_decision_facts(conn, namespace, promotion, stage, freight, recent)
        promotions = TABLES[Kind.PROMOTION]
        async with self.db.read() as conn:
            p_facts = None
            if promotion is not None:
                row = (
                    await conn.execute(
                        select(*[promotions.c[c] for c in _PROMOTION_COLUMNS]).where(
                            promotions.c.namespace == namespace, promotions.c.name == promotion, ~promotions.c.deleted
                        )
                    )
                ).first()
                p_facts = _promotion_facts(row) if row is not None else None
                stage = p_facts.stage if p_facts is not None else None
            state = await self._stage_state(conn, namespace, stage, recent) if stage else None
            names = {p.freight for p in (state.queue if state else []) if p.freight}
            if p_facts is not None and p_facts.freight:
                names.add(p_facts.freight)
            if freight:
                names.add(freight)
            freight = await self._freight(conn, namespace, sorted(names))
            versions = await self._versions(conn, namespace, stage) if stage else None
        return DecisionFacts(p_facts, state, freight, versions)

    async def versions(self, namespace: str, stage: str) -> tuple[str, int, int]:
        """The state versions a decision about ``stage`` depends on (see ``DecisionFacts.versions``)."""
        if self.db.direct is not None:
            found = dict(self.db.direct.fetch(_SQL_VERSIONS, (namespace, stage_scope(stage), FREIGHT_SCOPE)))
            return stage, found.get(stage_scope(stage), 0), found.get(FREIGHT_SCOPE, 0)
        rows = await self.db.fetch(_VERSIONS_QUERY, _versions_params(namespace, stage))
        found = {r.scope: r.version for r in rows}
        return stage, found.get(stage_scope(stage), 0), found.get(FREIGHT_SCOPE, 0)

    @staticmethod
    async def _versions(conn: AsyncConnection, namespace: str, stage: str) -> tuple[str, int, int]:
        found = {r.scope: r.version for r in await conn.execute(_VERSIONS_QUERY, _versions_params(namespace, stage))}
        return stage, found.get(stage_scope(stage), 0), found.get(FREIGHT_SCOPE, 0)

    async def _freight(self, conn: AsyncConnection, namespace: str, names: list[str]) -> dict[str, dict[str, Any]]:
        if not names:
            return {}
        table = TABLES[Kind.FREIGHT]
        rows = await conn.execute(
            select(table.c.name, table.c.object).where(
                table.c.namespace == namespace, table.c.name.in_(names), ~table.c.deleted
            )
        )
        return {r.name: msgspec.json.decode(r.object) for r in rows}

    async def counts(self) -> dict[str, int]:
        """Live (not deleted) objects per kind."""
        out: dict[str, int] = {}
        async with self.db.read() as conn:
            for kind, table in TABLES.items():
                out[kind.value] = (
                    await conn.execute(select(func.count()).select_from(table).where(~table.c.deleted))
                ).scalar_one()
        return out


_BUMP = text(
    "INSERT INTO state_versions (namespace, scope, version) VALUES (:namespace, :scope, 1)"
    " ON CONFLICT (namespace, scope) DO UPDATE SET version = state_versions.version + 1"
)
FREIGHT_SCOPE = "freight"


def stage_scope(stage: str) -> str:
    """The state-version scope of one Stage."""
    return f"stage/{stage}"


def _scopes(key: ObjectKey, stage: str | None, old_stage: str | None) -> set[tuple[str, str]]:
    """The state versions a change of ``key`` moves: the Stage(s) it belongs to, or the namespace's Freight."""
    if key.kind is Kind.FREIGHT:
        return {(key.namespace, FREIGHT_SCOPE)}
    if key.kind is Kind.STAGE:
        return {(key.namespace, stage_scope(key.name))}
    return {(key.namespace, stage_scope(s)) for s in (stage, old_stage) if s}


async def bump_versions(conn: AsyncConnection, scopes: set[tuple[str, str]]) -> None:
    """Move the given state versions on, in one order (concurrent writers on PostgreSQL cannot deadlock)."""
    if scopes:
        await conn.execute(_BUMP, [{"namespace": ns, "scope": scope} for ns, scope in sorted(scopes)])


_V = StateVersionRow.__table__
_VERSIONS_QUERY = select(_V.c.scope, _V.c.version).where(
    _V.c.namespace == bindparam("v_ns"), _V.c.scope.in_([bindparam("v_stage"), bindparam("v_freight")])
)


def _versions_params(namespace: str, stage: str) -> dict[str, str]:
    return {"v_ns": namespace, "v_stage": stage_scope(stage), "v_freight": FREIGHT_SCOPE}


def _key_order(key: ObjectKey) -> tuple[str, str, str]:
    return (key.kind.value, key.namespace, key.name)


def _now() -> datetime:
    return datetime.now(UTC)


def _row(obj: KargoObject, deleted: bool, now: datetime) -> dict[str, Any]:
    return {
        "namespace": obj.key.namespace,
        "name": obj.key.name,
        "uid": obj.uid,
        "resource_version": obj.resource_version,
        "deleted": deleted,
        "created_at": obj.created_at,
        "recorded_at": now,
        "object": msgspec.json.encode(obj.raw).decode(),
        **obj.columns,
    }


def _stored(kind: Kind, row: Any) -> StoredObject:
    return StoredObject(
        key=ObjectKey(kind, row.namespace, row.name),
        resource_version=row.resource_version,
        deleted=bool(row.deleted),
        created_at=row.created_at,
        recorded_at=row.recorded_at,
        object=msgspec.json.decode(row.object),
    )


def _promotion_facts(row: Any) -> PromotionFacts:
    return PromotionFacts(**{c: getattr(row, c) for c in _PROMOTION_COLUMNS})


def _run_facts(row: Any) -> RunFacts:
    return RunFacts(**{c: getattr(row, c) for c in _RUN_COLUMNS})


# --- the decision hot path on SQLite: the same reads as above, through stdlib sqlite3 ------------------

_P_COLS = ", ".join(_PROMOTION_COLUMNS)
_R_COLS = ", ".join(_RUN_COLUMNS)
_SQL_PROMOTION = f"SELECT {_P_COLS} FROM promotions WHERE namespace = ? AND name = ? AND deleted = 0"
_SQL_STAGE = (
    "SELECT namespace, name, resource_version, deleted, created_at, recorded_at, object, has_verification,"
    " health_status, current_promotion, last_promotion, current_freight_collection"
    " FROM stages WHERE namespace = ? AND name = ? AND deleted = 0"
)
_OF_STAGE = "FROM promotions WHERE namespace = ? AND stage = ? AND deleted = 0"
_SQL_QUEUE = f"SELECT {_P_COLS} {_OF_STAGE} AND terminal = 0"
_SQL_RECENT = f"SELECT {_P_COLS} {_OF_STAGE} AND terminal = 1 ORDER BY queue_key DESC LIMIT ?"
_SQL_LAST = f"SELECT {_P_COLS} {_OF_STAGE} AND phase = 'Succeeded' ORDER BY queue_key DESC LIMIT 1"
_SQL_RUN = (
    f"SELECT {_R_COLS} FROM analysis_runs WHERE namespace = ? AND stage = ? AND freight_collection = ?"
    " AND created_at >= ? AND deleted = 0 ORDER BY created_at DESC, name DESC LIMIT 1"
)


def _direct_decision_facts(
    conn: Any, namespace: str, promotion: str | None, stage: str | None, freight: str | None, recent: int
) -> DecisionFacts:
    p_facts = None
    if promotion is not None:
        found = conn.execute(_SQL_PROMOTION, (namespace, promotion)).fetchone()
        p_facts = _direct_promotion(found) if found is not None else None
        stage = p_facts.stage if p_facts is not None else None
    state = _direct_stage_state(conn, namespace, stage, recent) if stage else None
    names = {p.freight for p in (state.queue if state else []) if p.freight}
    if p_facts is not None and p_facts.freight:
        names.add(p_facts.freight)
    if freight:
        names.add(freight)
    objects: dict[str, dict[str, Any]] = {}
    if names:
        ordered = sorted(names)
        marks = ", ".join("?" * len(ordered))
        sql = f"SELECT name, object FROM freight WHERE namespace = ? AND name IN ({marks}) AND deleted = 0"
        objects = {name: msgspec.json.decode(obj) for name, obj in conn.execute(sql, (namespace, *ordered))}
    versions = _direct_versions(conn, namespace, stage) if stage else None
    return DecisionFacts(p_facts, state, objects, versions)


_SQL_VERSIONS = "SELECT scope, version FROM state_versions WHERE namespace = ? AND scope IN (?, ?)"


def _direct_versions(conn: Any, namespace: str, stage: str) -> tuple[str, int, int]:
    found = dict(conn.execute(_SQL_VERSIONS, (namespace, stage_scope(stage), FREIGHT_SCOPE)).fetchall())
    return stage, found.get(stage_scope(stage), 0), found.get(FREIGHT_SCOPE, 0)


def _direct_stage_state(conn: Any, namespace: str, name: str, recent: int) -> StageState | None:
    row = conn.execute(_SQL_STAGE, (namespace, name)).fetchone()
    if row is None:
        return None
    (ns, stage_name, resource_version, deleted, created_at, recorded_at, obj, has_verification, health,
     current_promotion, last_promotion, current_collection) = row  # fmt: skip
    queue = [_direct_promotion(r) for r in conn.execute(_SQL_QUEUE, (namespace, name))]
    history = [_direct_promotion(r) for r in conn.execute(_SQL_RECENT, (namespace, name, max(recent, 0)))]
    last_row = conn.execute(_SQL_LAST, (namespace, name)).fetchone()
    last = _direct_promotion(last_row) if last_row is not None else None
    candidates: list[RunFacts] = []
    if has_verification and last is not None and last.freight_collection and last.finished_at:
        params = (namespace, name, last.freight_collection, to_db_time(last.finished_at))
        candidates = [_direct_run(r) for r in conn.execute(_SQL_RUN, params)]
    stored = StoredObject(
        key=ObjectKey(Kind.STAGE, ns, stage_name),
        resource_version=resource_version,
        deleted=bool(deleted),
        created_at=from_db_time(created_at),
        recorded_at=from_db_time(recorded_at),  # type: ignore[arg-type]
        object=msgspec.json.decode(obj),
    )
    return StageState(
        stage=stored,
        has_verification=bool(has_verification),
        health_status=health,
        current_promotion=current_promotion,
        last_promotion=last_promotion,
        current_freight_collection=current_collection,
        queue=queue_order(queue),
        recent=history,
        last_succeeded=newest_succeeded([last] if last else []),
        verification=verifying_run(last, candidates) if has_verification else None,
    )


def _direct_promotion(row: tuple[Any, ...]) -> PromotionFacts:
    ns, name, stage, freight, phase, key, created, started, finished, collection, aborting = row
    return PromotionFacts(
        ns, name, stage, freight, phase, key, from_db_time(created), from_db_time(started),
        from_db_time(finished), collection, bool(aborting),
    )  # fmt: skip


def _direct_run(row: tuple[Any, ...]) -> RunFacts:
    ns, name, stage, collection, promotion, phase, terminated, created, started, completed = row
    return RunFacts(
        ns, name, stage, collection, promotion, phase, bool(terminated), from_db_time(created),
        from_db_time(started), from_db_time(completed),
    )  # fmt: skip
