"""Policies and their immutable revisions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from policy_server.store._db import Database
from policy_server.store._models import PolicyRevisionRow, PolicyRow, PolicySetRow

_P = PolicyRow.__table__
_R = PolicyRevisionRow.__table__
_S = PolicySetRow.__table__


@dataclass(frozen=True, slots=True)
class RevisionDraft:
    """The content of a revision to write."""

    source: str
    tests: dict[str, str] = field(default_factory=dict)
    title: str = ""
    description: str = ""
    mode: str = "enforce"
    scope: dict[str, list[str]] = field(default_factory=lambda: {"namespaces": ["*"], "stages": ["*"]})
    parameters: dict[str, Any] = field(default_factory=dict)
    parameters_schema: dict[str, Any] | None = None
    """A JSON Schema (2020-12) the parameters must follow, when the policy declares one."""

    @property
    def content_hash(self) -> str:
        """Changes whenever anything that affects decisions or tests changes."""
        content: list[Any] = [self.source, self.tests, self.mode, self.scope, self.parameters, self.title,
                              self.description]  # fmt: skip
        if self.parameters_schema is not None:
            content.append(self.parameters_schema)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Revision:
    """A stored revision."""

    policy_id: str
    number: int
    created_at: datetime
    author: str
    comment: str
    action: str
    deleted: bool
    draft: RevisionDraft
    content_hash: str
    based_on: int | None


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy with its active revision (None before the first one; ``deleted`` when switched off)."""

    id: str
    builtin: bool
    builtin_hash: str | None
    active: Revision | None
    updated_at: datetime
    revisions: int


class PolicyStore:
    """Reads and writes policies; every change is a new revision, and activations bump the set version."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def version(self) -> int:
        """The policy-set version: it changes whenever any active revision does."""
        async with self.db.read() as conn:
            return (await conn.execute(select(_S.c.version).where(_S.c.id == 1))).scalar_one_or_none() or 0

    async def active_set(self) -> tuple[int, list[Revision]]:
        """The version and every active, not deleted revision, read from one snapshot."""
        async with self.db.read() as conn:
            version = (await conn.execute(select(_S.c.version).where(_S.c.id == 1))).scalar_one_or_none() or 0
            rows = await conn.execute(
                select(_R)
                .join(_P, (_P.c.id == _R.c.policy_id) & (_P.c.active_revision == _R.c.number))
                .where(~_R.c.deleted)
                .order_by(_R.c.policy_id)
            )
            return version, [_revision(r) for r in rows]

    async def get(self, policy_id: str) -> Policy | None:
        """One policy, or None."""
        async with self.db.read() as conn:
            return await self._get(conn, policy_id)

    async def list(self) -> list[Policy]:
        """Every policy, by id."""
        async with self.db.read() as conn:
            ids = (await conn.execute(select(_P.c.id).order_by(_P.c.id))).scalars().all()
            return [p for p in [await self._get(conn, i) for i in ids] if p is not None]

    async def revisions(self, policy_id: str) -> list[Revision]:
        """A policy's history, newest first."""
        async with self.db.read() as conn:
            rows = await conn.execute(select(_R).where(_R.c.policy_id == policy_id).order_by(_R.c.number.desc()))
            return [_revision(r) for r in rows]

    async def revision(self, policy_id: str, number: int) -> Revision | None:
        """One revision, or None."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(_R).where(_R.c.policy_id == policy_id, _R.c.number == number))).first()
            return _revision(row) if row is not None else None

    async def add_revision(
        self,
        policy_id: str,
        draft: RevisionDraft,
        *,
        author: str,
        comment: str,
        action: str,
        deleted: bool = False,
        based_on: int | None = None,
        builtin: bool | None = None,
    ) -> Revision:
        """Write a new revision and make it active, atomically (numbers never repeat)."""
        async with self.db.write() as conn:
            await self.db.lock(conn, [f"policy/{policy_id}"])
            return await self._add(
                conn, policy_id, draft, author, comment, action, deleted, based_on, builtin, builtin_hash=None
            )

    async def sync_builtin(self, policy_id: str, draft: RevisionDraft, *, enabled: bool = True) -> Revision | None:
        """Load a built-in policy: first time, or changed on disk while the active revision is still built in.

        A library policy that is off by default (``enabled`` false) is recorded switched off (a deleting
        revision): ``restore`` or a write with the user's parameters turns it on.

        A policy a user has overridden or deleted keeps the user's revision; only the recorded built-in hash
        moves, so that ``restore`` brings back the new built-in version. Returns the revision written, if any.
        """
        content = draft.content_hash
        async with self.db.write() as conn:
            await self.db.lock(conn, [f"policy/{policy_id}"])
            policy = await self._get(conn, policy_id)
            if policy is not None and policy.builtin_hash == content:
                return None
            untouched = policy is None or policy.active is None or policy.active.author == "builtin"
            if not untouched:
                await conn.execute(update(_P).where(_P.c.id == policy_id).values(builtin=True, builtin_hash=content))
                return None
            return await self._add(
                conn,
                policy_id,
                draft,
                "builtin",
                "built-in policy loaded from policies/" + ("" if enabled else " (off by default)"),
                "builtin",
                not enabled,
                None,
                True,
                builtin_hash=content,
            )

    async def _add(
        self,
        conn: AsyncConnection,
        policy_id: str,
        draft: RevisionDraft,
        author: str,
        comment: str,
        action: str,
        deleted: bool,
        based_on: int | None,
        builtin: bool | None,
        *,
        builtin_hash: str | None,
    ) -> Revision:
        now = datetime.now(UTC)
        existing = (await conn.execute(select(_P).where(_P.c.id == policy_id))).first()
        last = (
            await conn.execute(select(_R.c.number).where(_R.c.policy_id == policy_id).order_by(_R.c.number.desc()))
        ).first()
        number = (last.number if last else 0) + 1
        values = {
            "policy_id": policy_id,
            "number": number,
            "created_at": now,
            "author": author,
            "comment": comment,
            "action": action,
            "deleted": deleted,
            "source": draft.source,
            "tests": json.dumps(draft.tests, sort_keys=True),
            "title": draft.title,
            "description": draft.description,
            "mode": draft.mode,
            "scope": json.dumps(draft.scope, sort_keys=True),
            "parameters": json.dumps(draft.parameters, sort_keys=True),
            "parameters_schema": None if draft.parameters_schema is None else json.dumps(draft.parameters_schema),
            "content_hash": draft.content_hash,
            "based_on": based_on,
        }
        await conn.execute(insert(_R).values(values))
        policy_values: dict[str, Any] = {"active_revision": number, "updated_at": now}
        if builtin is not None:
            policy_values["builtin"] = builtin
        if builtin_hash is not None:
            policy_values["builtin_hash"] = builtin_hash
        if existing is None:
            policy_values.setdefault("builtin", False)
            await conn.execute(insert(_P).values(id=policy_id, **policy_values))
        else:
            await conn.execute(update(_P).where(_P.c.id == policy_id).values(**policy_values))
        await conn.execute(update(_S).where(_S.c.id == 1).values(version=_S.c.version + 1, updated_at=now))
        row = (await conn.execute(select(_R).where(_R.c.policy_id == policy_id, _R.c.number == number))).one()
        return _revision(row)

    async def _get(self, conn: AsyncConnection, policy_id: str) -> Policy | None:
        row = (await conn.execute(select(_P).where(_P.c.id == policy_id))).first()
        if row is None:
            return None
        active = None
        if row.active_revision is not None:
            rev = (
                await conn.execute(select(_R).where(_R.c.policy_id == policy_id, _R.c.number == row.active_revision))
            ).first()
            active = _revision(rev) if rev is not None else None
        count = len((await conn.execute(select(_R.c.number).where(_R.c.policy_id == policy_id))).all())
        return Policy(row.id, bool(row.builtin), row.builtin_hash, active, row.updated_at, count)


def _revision(row: Any) -> Revision:
    draft = RevisionDraft(
        source=row.source,
        tests=json.loads(row.tests),
        title=row.title,
        description=row.description,
        mode=row.mode,
        scope=json.loads(row.scope),
        parameters=json.loads(row.parameters),
        parameters_schema=None if row.parameters_schema is None else json.loads(row.parameters_schema),
    )
    return Revision(
        policy_id=row.policy_id,
        number=row.number,
        created_at=row.created_at,
        author=row.author,
        comment=row.comment,
        action=row.action,
        deleted=bool(row.deleted),
        draft=draft,
        content_hash=row.content_hash,
        based_on=row.based_on,
    )
