"""decisions.input goes: inputs are read from decision_inputs (copied by 0008).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 18:15:02.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("input")


def downgrade() -> None:
    # The column comes back empty: inputs logged since stay in decision_inputs (which 0007's downgrade drops).
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("input", sa.Text(), nullable=False, server_default="{}"))
