"""State versions: a counter per Stage and per namespace's Freight, moved on by every change that can alter a
decision about that Stage. A verdict computed at versions (v_stage, v_freight) holds while both stand."""

from __future__ import annotations

from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from policy_server.kargo import Kind, ObjectKey
from policy_server.store._models import StateVersionRow

FREIGHT_SCOPE = "freight"
Versions = tuple[str, int, int]
"""(Stage, its state version, the namespace's Freight version)."""


def stage_scope(stage: str) -> str:
    """The state-version scope of one Stage."""
    return f"stage/{stage}"


def scopes_of(key: ObjectKey, stage: str | None, old_stage: str | None) -> set[tuple[str, str]]:
    """The state versions a change of ``key`` moves: the Stage(s) it belongs to, or the namespace's Freight."""
    if key.kind is Kind.FREIGHT:
        return {(key.namespace, FREIGHT_SCOPE)}
    if key.kind is Kind.STAGE:
        return {(key.namespace, stage_scope(key.name))}
    return {(key.namespace, stage_scope(s)) for s in (stage, old_stage) if s}


def versions_of(stage: str, found: dict[str, int]) -> Versions:
    """The versions of ``stage`` from the rows read (``scope → version``; a scope never moved is 0)."""
    return stage, found.get(stage_scope(stage), 0), found.get(FREIGHT_SCOPE, 0)


_BUMP = text(
    "INSERT INTO state_versions (namespace, scope, version) VALUES (:namespace, :scope, 1)"
    " ON CONFLICT (namespace, scope) DO UPDATE SET version = state_versions.version + 1"
)


async def bump_versions(conn: AsyncConnection, scopes: set[tuple[str, str]]) -> None:
    """Move the given state versions on, in one order (concurrent writers on PostgreSQL cannot deadlock)."""
    if scopes:
        await conn.execute(_BUMP, [{"namespace": ns, "scope": scope} for ns, scope in sorted(scopes)])


_V = StateVersionRow.__table__
VERSIONS_QUERY = select(_V.c.scope, _V.c.version).where(
    _V.c.namespace == bindparam("v_ns"), _V.c.scope.in_([bindparam("v_stage"), bindparam("v_freight")])
)
"""The two versions of one Stage (bound with ``versions_params``), for the SQLAlchemy path."""


def versions_params(namespace: str, stage: str) -> dict[str, str]:
    return {"v_ns": namespace, "v_stage": stage_scope(stage), "v_freight": FREIGHT_SCOPE}


async def read_versions(conn: AsyncConnection, namespace: str, stage: str) -> Versions:
    """The versions of ``stage`` inside an open transaction."""
    rows = await conn.execute(VERSIONS_QUERY, versions_params(namespace, stage))
    return versions_of(stage, {r.scope: r.version for r in rows})
