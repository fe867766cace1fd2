"""What became of each action a decision asked for: applied by the enforcer, already done, dry run, or failed.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "action_outcomes",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("decision_id", sa.String(length=26), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("promotion", sa.String(length=253), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_outcomes")),
    )
    with op.batch_alter_table("action_outcomes", schema=None) as batch_op:
        batch_op.create_index("ix_action_outcomes_decision", ["decision_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("action_outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_action_outcomes_decision")
    op.drop_table("action_outcomes")
