"""Recorded Kargo state: applying objects and watch events (the rules are in ``_ingest``), and reading it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from policy_server.kargo import Item, Kind, ObjectKey, PromotionFacts
from policy_server.store._db import Database
from policy_server.store._ingest import Recorded, apply_items
from policy_server.store._reads import read_stage_state
from policy_server.store._rows import TABLES, object_row, promotion_facts, stored
from policy_server.store._types import ApplyResult, DecisionFacts, Probe, StageState, StageSummary, StoredObject
from policy_server.store._versions import Versions, bump_versions, scopes_of

_CHUNK = 400


class StateStore:
    """Reads and writes recorded Kargo state."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.listeners: list[Callable[[set[tuple[str, str]]], None]] = []
        """Called after each committed write with the state-version scopes it moved ((namespace, scope))."""

    def _changed(self, scopes: set[tuple[str, str]]) -> None:
        for listener in self.listeners:
            try:
                listener(scopes)
            except Exception:  # noqa: BLE001 - a listener's trouble is not the write's
                logging.getLogger("policy_server.state").exception("a state listener failed")

    # --- writes ---------------------------------------------------------------------------------

    async def apply(self, items: Sequence[Item]) -> ApplyResult:
        """Apply items in order, in one transaction; an older resourceVersion never overwrites a newer one."""
        keys = sorted({i.obj.key for i in items if i.obj is not None}, key=_key_order)
        async with self.db.write() as conn:
            await self._lock(conn, keys)
            recorded = await self._load(conn, keys)
            result = apply_items(list(items), recorded)
            scopes = await self._write(conn, recorded)
        if scopes:
            self._changed(scopes)
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
            scopes = scopes_of(key, None, row[2] if stage is not None else None)
            await bump_versions(conn, scopes)
            rv = resource_version or row.resource_version
            await conn.execute(
                update(table)
                .where(table.c.namespace == key.namespace, table.c.name == key.name)
                .values(deleted=True, resource_version=rv, recorded_at=_now())
            )
        self._changed(scopes)
        return True

    async def _lock(self, conn: AsyncConnection, keys: Sequence[ObjectKey]) -> None:
        # One lock per object, so that concurrent requests for the same object take turns.
        await self.db.lock(conn, [f"{k.kind.value}/{k.namespace}/{k.name}" for k in keys])

    async def _load(self, conn: AsyncConnection, keys: Sequence[ObjectKey]) -> dict[ObjectKey, Recorded]:
        recorded: dict[ObjectKey, Recorded] = {k: Recorded(None, False, False) for k in keys}
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
                    recorded[ObjectKey(kind, row.namespace, row.name)] = Recorded(
                        row.resource_version, bool(row.deleted), True, old_stage=row[4] if stage is not None else None
                    )
        return recorded

    async def _write(self, conn: AsyncConnection, recorded: dict[ObjectKey, Recorded]) -> set[tuple[str, str]]:
        now = _now()
        inserts: dict[Kind, list[dict[str, Any]]] = {}
        updates: dict[Kind, list[dict[str, Any]]] = {}
        scopes: set[tuple[str, str]] = set()
        for key, state in recorded.items():
            if not state.dirty or state.obj is None:
                continue
            row = object_row(state.obj, state.deleted, now)
            (updates if state.exists else inserts).setdefault(key.kind, []).append(row)
            scopes.update(scopes_of(key, state.obj.columns.get("stage"), state.old_stage))
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
        return scopes

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
        return stored(key.kind, row)

    async def live_names(self, kind: Kind, namespace: str) -> dict[str, str | None]:
        """The recorded, not deleted, objects of one kind in a namespace: name → resourceVersion."""
        table = TABLES[kind]
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(table.c.name, table.c.resource_version).where(table.c.namespace == namespace, ~table.c.deleted)
            )
            return {row.name: row.resource_version for row in rows}

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
        return stored(Kind.PROMOTION, row), promotion_facts(row)

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
            return await read_stage_state(conn, namespace, name, recent)

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
        return await self.db.hot.decision_facts(namespace, promotion, stage, freight, recent)

    async def versions(self, namespace: str, stage: str) -> Versions:
        """The state versions a decision about ``stage`` depends on (see ``DecisionFacts.versions``)."""
        return await self.db.hot.versions(namespace, stage)

    async def probe(self, namespace: str, stage: str, promotion: str | None = None) -> Probe:
        """What a repeated decision about ``promotion`` (None: a prospective one) on ``stage`` checks, from one
        snapshot: the state versions, the policy-set version, the Stage's claim and the last logged decision."""
        return await self.db.hot.probe(namespace, stage, promotion)

    async def counts(self) -> dict[str, int]:
        """Live (not deleted) objects per kind."""
        out: dict[str, int] = {}
        async with self.db.read() as conn:
            for kind, table in TABLES.items():
                out[kind.value] = (
                    await conn.execute(select(func.count()).select_from(table).where(~table.c.deleted))
                ).scalar_one()
        return out


def _key_order(key: ObjectKey) -> tuple[str, str, str]:
    return (key.kind.value, key.namespace, key.name)


def _now() -> datetime:
    return datetime.now(UTC)
