"""Decision inputs move to a table of their own (compressed), so that browsing the log never reads them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 18:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Schema changes first; data steps, if any, go in a revision of their own."""

    op.create_table(
        "decision_inputs",
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("encoding", sa.String(length=8), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decision_inputs")),
    )


def downgrade() -> None:

    op.drop_table("decision_inputs")
