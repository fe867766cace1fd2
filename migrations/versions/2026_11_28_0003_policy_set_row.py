"""Data: the single policy-set version row that replicas poll.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 14:12:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_policy_set = sa.table(
    "policy_set",
    sa.column("id", sa.BigInteger),
    sa.column("version", sa.BigInteger),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    """The counter starts at 0."""
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(_policy_set, [{"id": 1, "version": 0, "updated_at": now}])


def downgrade() -> None:
    op.execute(_policy_set.delete().where(_policy_set.c.id == 1))
