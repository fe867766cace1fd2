"""API tokens and the audit trail."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from ulid import ULID

from policy_server.errors import Conflict
from policy_server.store._db import Database
from policy_server.store._models import AuditEventRow, TokenRow

_T = TokenRow.__table__
_A = AuditEventRow.__table__


@dataclass(frozen=True, slots=True)
class Token:
    """A stored token (its secret's hash only)."""

    id: str
    name: str
    role: str
    namespaces: list[str] | None
    secret_hash: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One recorded change."""

    id: str
    at: datetime
    actor: str
    action: str
    target: str
    before: str | None
    after: str | None
    detail: dict[str, Any]


class AccessStore:
    """Tokens and audit events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_token(
        self, name: str, role: str, namespaces: list[str] | None, secret_hash: str, created_by: str, token_id: str
    ) -> Token:
        """Store a token and audit its creation, in one transaction."""
        now = datetime.now(UTC)
        values = {
            "id": token_id,
            "name": name,
            "role": role,
            "namespaces": json.dumps(sorted(namespaces)) if namespaces is not None else None,
            "secret_hash": secret_hash,
            "created_at": now,
            "created_by": created_by,
            "revoked_at": None,
        }
        try:
            async with self.db.write() as conn:
                await conn.execute(insert(_T).values(values))
                await conn.execute(insert(_A).values(_event(created_by, "token.create", f"token/{name}", None, role, {
                    "role": role, "namespaces": namespaces})))  # fmt: skip
        except IntegrityError:
            raise Conflict(f"a token named {name!r} exists already") from None
        return _token(values)

    async def revoke_token(self, name: str, actor: str) -> Token | None:
        """Revoke a token by name; None when there is no live token of that name."""
        async with self.db.write() as conn:
            row = (await conn.execute(select(_T).where(_T.c.name == name, _T.c.revoked_at.is_(None)))).first()
            if row is None:
                return None
            await conn.execute(update(_T).where(_T.c.id == row.id).values(revoked_at=datetime.now(UTC)))
            await conn.execute(insert(_A).values(_event(actor, "token.revoke", f"token/{name}", row.role, None, {})))
        return _token(row._asdict())

    async def token(self, token_id: str) -> Token | None:
        """A token by id (revoked ones too)."""
        async with self.db.read() as conn:
            row = (await conn.execute(select(_T).where(_T.c.id == token_id))).first()
        return _token(row._asdict()) if row is not None else None

    async def tokens(self) -> list[Token]:
        """Every token, newest first."""
        async with self.db.read() as conn:
            rows = await conn.execute(select(_T).order_by(_T.c.id.desc()))
            return [_token(r._asdict()) for r in rows]

    async def live_tokens(self) -> int:
        """How many tokens are not revoked."""
        async with self.db.read() as conn:
            return (
                await conn.execute(select(func.count()).select_from(_T).where(_T.c.revoked_at.is_(None)))
            ).scalar_one()

    async def record(
        self, actor: str, action: str, target: str, before: str | None, after: str | None, detail: dict[str, Any]
    ) -> None:
        """Append an audit event."""
        async with self.db.write() as conn:
            await conn.execute(insert(_A).values(_event(actor, action, target, before, after, detail)))

    async def events(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[AuditEvent]:
        """Audit events, newest first, filtered; ``before`` is the cursor (an event id)."""
        query = select(_A)
        if action is not None:
            query = query.where(_A.c.action == action)
        if actor is not None:
            query = query.where(_A.c.actor == actor)
        if target is not None:
            query = query.where(_A.c.target == target)
        if since is not None:
            query = query.where(_A.c.at >= since)
        if until is not None:
            query = query.where(_A.c.at <= until)
        if before is not None:
            query = query.where(_A.c.id < before)
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(_A.c.id.desc()).limit(limit))
            return [
                AuditEvent(r.id, r.at, r.actor, r.action, r.target, r.before, r.after, json.loads(r.detail or "{}"))
                for r in rows
            ]


def _event(
    actor: str, action: str, target: str, before: str | None, after: str | None, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": str(ULID()),
        "at": datetime.now(UTC),
        "actor": actor,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
        "detail": json.dumps(detail, sort_keys=True),
    }


def _token(values: dict[str, Any]) -> Token:
    namespaces = values.get("namespaces")
    return Token(
        id=values["id"],
        name=values["name"],
        role=values["role"],
        namespaces=json.loads(namespaces) if namespaces else None,
        secret_hash=values["secret_hash"],
        created_at=values["created_at"],
        created_by=values["created_by"],
        revoked_at=values.get("revoked_at"),
    )
