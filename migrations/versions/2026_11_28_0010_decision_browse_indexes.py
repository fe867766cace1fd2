"""Indexes for browsing the decision log newest first by namespace, and by outcome (recent denials).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 18:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_namespace", ["namespace", "id"], unique=False)
        batch_op.create_index("ix_decisions_allow", ["allow", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_allow")
        batch_op.drop_index("ix_decisions_namespace")
